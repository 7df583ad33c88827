// io_metrics_test: the standard I/O families carry what was recorded, and only while the object
// exists.
#include "common/metrics/io_metrics.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace vios::metrics {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(IoMetricsTest, RecordsOperationsBytesErrorsAndLatency) {
  Registry registry;
  IoMetrics port(registry, "port", "pvc-1");
  IoMetrics backend(registry, "backend", "lun0");
  port.Record(IoMetricOp::kRead, 4096, 0.000080, true);
  port.Record(IoMetricOp::kRead, 4096, 0.000300, true);
  port.Record(IoMetricOp::kWrite, 131072, 0.002, true);
  port.Record(IoMetricOp::kWrite, 4096, 0.5, false);
  backend.Record(IoMetricOp::kDiscard, 1 << 20, 0.001, true);

  std::string text = registry.Serialize();
  EXPECT_TRUE(Has(text, "vios_io_operations_total{name=\"pvc-1\",op=\"read\",scope=\"port\"} 2"))
      << text;
  EXPECT_TRUE(Has(text, "vios_io_bytes_total{name=\"pvc-1\",op=\"write\",scope=\"port\"} 131072"));
  EXPECT_TRUE(Has(text, "vios_io_errors_total{name=\"pvc-1\",op=\"write\",scope=\"port\"} 1"));
  EXPECT_TRUE(
      Has(text, "vios_io_operations_total{name=\"lun0\",op=\"discard\",scope=\"backend\"} 1"));
  // 80 µs and 300 µs: one read at or below 100 µs, both at or below 500 µs.
  EXPECT_TRUE(Has(text,
                  "vios_io_latency_seconds_bucket{name=\"pvc-1\",op=\"read\",scope=\"port\","
                  "le=\"0.0001\"} 1"))
      << text;
  EXPECT_TRUE(Has(text,
                  "vios_io_latency_seconds_bucket{name=\"pvc-1\",op=\"read\",scope=\"port\","
                  "le=\"0.0005\"} 2"));
  // Discard has no latency series: the histogram count stays per read/write/flush.
  EXPECT_FALSE(Has(text, "vios_io_latency_seconds_count{name=\"lun0\",op=\"discard\""));
}

TEST(IoMetricsTest, SeriesDisappearWithTheObject) {
  Registry registry;
  IoMetrics keep(registry, "port", "keep");
  {
    auto gone = std::make_unique<IoMetrics>(registry, "port", "gone");
    gone->Record(IoMetricOp::kFlush, 0, 0.001, true);
    EXPECT_TRUE(Has(registry.Serialize(), "name=\"gone\""));
  }
  std::string text = registry.Serialize();
  EXPECT_FALSE(Has(text, "name=\"gone\""));
  EXPECT_TRUE(Has(text, "name=\"keep\""));
}

}  // namespace
}  // namespace vios::metrics
