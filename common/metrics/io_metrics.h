// IoMetrics: the standard I/O statistics of one data-path object (a virtual port, a volume, a
// backend, a peer path), declared once so every component exports the same families
// (DESIGN.md §9, STYLE.md: statistics declared together, labels bounded).
//
// Families (labels scope, name, op):
//   vios_io_operations_total, vios_io_bytes_total, vios_io_errors_total (counters)
//   vios_io_latency_seconds (histogram, IoLatencyBuckets(); read, write and flush only)
// scope is a fixed word ("port", "volume", "backend", "peer"); name is the object's configured
// name; op is one of the five below. Nothing per-I/O (LBA, initiator-chosen values) is a label.
//
//   IoMetrics m(registry, "backend", "lun0");
//   m.Record(IoMetricOp::kRead, 4096, 0.000120, /*ok=*/true);   // no allocation, lock-free
//                                                               // except the histogram's mutex
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <array>
#include <cstdint>
#include <string>

#include "common/metrics/metrics.h"

namespace vios::metrics {

// IoMetricOp has the order of backend::IoOp, so a data-path caller may static_cast between them.
enum class IoMetricOp : uint8_t { kRead, kWrite, kFlush, kWriteZeroes, kDiscard };
inline constexpr size_t kIoMetricOps = 5;

const char* IoMetricOpName(IoMetricOp op);

class IoMetrics {
 public:
  // IoMetrics adds this object's series to the registry's families. Keep one instance per
  // (scope, name): the destructor removes the series (a deleted port stops being exported).
  IoMetrics(Registry& registry, const std::string& scope, const std::string& name);
  ~IoMetrics();
  IoMetrics(const IoMetrics&) = delete;
  IoMetrics& operator=(const IoMetrics&) = delete;

  // Record counts one finished I/O: bytes and latency on success, an error otherwise.
  void Record(IoMetricOp op, uint64_t bytes, double seconds, bool ok);

 private:
  struct PerOp {
    prometheus::Counter* operations = nullptr;
    prometheus::Counter* bytes = nullptr;
    prometheus::Counter* errors = nullptr;
    prometheus::Histogram* latency = nullptr;  // Null for ops without a latency series.
  };
  prometheus::Family<prometheus::Counter>* operations_;
  prometheus::Family<prometheus::Counter>* bytes_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Histogram>* latency_;
  std::array<PerOp, kIoMetricOps> ops_;
};

}  // namespace vios::metrics
