// IoMetrics: family declarations and per-object series (see io_metrics.h).
#include "common/metrics/io_metrics.h"

namespace vios::metrics {

const char* IoMetricOpName(IoMetricOp op) {
  switch (op) {
    case IoMetricOp::kRead:
      return "read";
    case IoMetricOp::kWrite:
      return "write";
    case IoMetricOp::kFlush:
      return "flush";
    case IoMetricOp::kWriteZeroes:
      return "write_zeroes";
    case IoMetricOp::kDiscard:
      return "discard";
  }
  return "unknown";
}

IoMetrics::IoMetrics(Registry& registry, const std::string& scope, const std::string& name)
    : operations_(&prometheus::BuildCounter()
                       .Name("vios_io_operations_total")
                       .Help("I/O operations completed successfully")
                       .Register(registry.registry())),
      bytes_(&prometheus::BuildCounter()
                  .Name("vios_io_bytes_total")
                  .Help("Bytes moved by successful I/O operations")
                  .Register(registry.registry())),
      errors_(&prometheus::BuildCounter()
                   .Name("vios_io_errors_total")
                   .Help("I/O operations that failed")
                   .Register(registry.registry())),
      latency_(&prometheus::BuildHistogram()
                    .Name("vios_io_latency_seconds")
                    .Help("Latency of successful I/O operations")
                    .Register(registry.registry())) {
  for (size_t i = 0; i < kIoMetricOps; ++i) {
    auto op = static_cast<IoMetricOp>(i);
    prometheus::Labels labels = {{"scope", scope}, {"name", name}, {"op", IoMetricOpName(op)}};
    ops_[i].operations = &operations_->Add(labels);
    ops_[i].bytes = &bytes_->Add(labels);
    ops_[i].errors = &errors_->Add(labels);
    if (op == IoMetricOp::kRead || op == IoMetricOp::kWrite || op == IoMetricOp::kFlush) {
      ops_[i].latency = &latency_->Add(labels, IoLatencyBuckets());
    }
  }
}

IoMetrics::~IoMetrics() {
  for (auto& op : ops_) {
    operations_->Remove(op.operations);
    bytes_->Remove(op.bytes);
    errors_->Remove(op.errors);
    if (op.latency != nullptr) {
      latency_->Remove(op.latency);
    }
  }
}

void IoMetrics::Record(IoMetricOp op, uint64_t bytes, double seconds, bool ok) {
  PerOp& m = ops_[static_cast<size_t>(op)];
  if (!ok) {
    m.errors->Increment();
    return;
  }
  m.operations->Increment();
  m.bytes->Increment(static_cast<double>(bytes));
  if (m.latency != nullptr) {
    m.latency->Observe(seconds);
  }
}

}  // namespace vios::metrics
