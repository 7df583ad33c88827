// Report: text and JSON rendering of a RunResult (see report.h).
#include "bench/loadgen/report.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace vios::bench {
namespace {

double Micros(uint64_t nanos) { return static_cast<double>(nanos) / 1000.0; }

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  return {{"mean", h.MeanNanos() / 1000.0},           {"p50", Micros(h.PercentileNanos(50))},
          {"p90", Micros(h.PercentileNanos(90))},     {"p99", Micros(h.PercentileNanos(99))},
          {"p99_9", Micros(h.PercentileNanos(99.9))}, {"max", Micros(h.MaxNanos())}};
}

double Rate(double amount, double seconds) { return seconds > 0 ? amount / seconds : 0.0; }

nlohmann::json OpJson(const OpStats& s, double seconds) {
  return {{"ios", s.ios},
          {"bytes", s.bytes},
          {"iops", Rate(static_cast<double>(s.ios), seconds)},
          {"mbps", Rate(static_cast<double>(s.bytes) / 1e6, seconds)},
          {"latency_us", LatencyJson(s.latency)}};
}

LatencyHistogram Combined(const RunResult& r) {
  LatencyHistogram all = r.read.latency;
  all.Merge(r.write.latency);
  return all;
}

}  // namespace

std::string FormatJson(const Options& options, const RunResult& r) {
  double t = r.elapsed_seconds;
  uint64_t ios = r.read.ios + r.write.ios;
  uint64_t bytes = r.read.bytes + r.write.bytes;
  nlohmann::json failures = nlohmann::json::object();
  for (const auto& [kind, count] : r.verify.failures_by_kind) {
    failures[kind] = count;
  }
  nlohmann::json j = {
      {"target", options.url},
      {"rw", PatternName(options.pattern)},
      {"bs", options.block_bytes},
      {"qd", options.queue_depth},
      {"lun_block_size", r.block_size},
      {"region_bytes", r.region_bytes},
      {"elapsed_s", t},
      {"ios", ios},
      {"iops", Rate(static_cast<double>(ios), t)},
      {"mbps", Rate(static_cast<double>(bytes) / 1e6, t)},
      {"io_errors", r.io_errors},
      {"read", OpJson(r.read, t)},
      {"write", OpJson(r.write, t)},
      {"latency_us", LatencyJson(Combined(r))},
      {"verify",
       {{"enabled", options.verify},
        {"blocks_checked", r.verify.blocks_checked},
        {"readback_blocks", r.verify.readback_blocks},
        {"failures", r.verify.failures},
        {"failures_by_kind", failures}}},
      {"error", r.fatal_error},
  };
  return j.dump() + "\n";
}

std::string FormatText(const Options& options, const RunResult& r) {
  double t = r.elapsed_seconds;
  uint64_t ios = r.read.ios + r.write.ios;
  uint64_t bytes = r.read.bytes + r.write.bytes;
  LatencyHistogram all = Combined(r);
  char buf[1024];
  std::string out;
  std::snprintf(buf, sizeof(buf),
                "%s bs=%llu qd=%u: %.0f IOPS, %.1f MB/s over %.2f s (%llu I/Os)\n",
                PatternName(options.pattern), static_cast<unsigned long long>(options.block_bytes),
                options.queue_depth, Rate(static_cast<double>(ios), t),
                Rate(static_cast<double>(bytes) / 1e6, t), t, static_cast<unsigned long long>(ios));
  out += buf;
  std::snprintf(
      buf, sizeof(buf), "latency us: mean %.1f p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
      all.MeanNanos() / 1000.0, Micros(all.PercentileNanos(50)), Micros(all.PercentileNanos(90)),
      Micros(all.PercentileNanos(99)), Micros(all.PercentileNanos(99.9)), Micros(all.MaxNanos()));
  out += buf;
  std::snprintf(buf, sizeof(buf), "I/O errors: %llu\n",
                static_cast<unsigned long long>(r.io_errors));
  out += buf;
  if (options.verify) {
    std::snprintf(buf, sizeof(buf),
                  "verify: %llu blocks checked (%llu in read-back), %llu failures\n",
                  static_cast<unsigned long long>(r.verify.blocks_checked),
                  static_cast<unsigned long long>(r.verify.readback_blocks),
                  static_cast<unsigned long long>(r.verify.failures));
    out += buf;
  }
  if (!r.fatal_error.empty()) {
    out += "error: " + r.fatal_error + "\n";
  }
  return out;
}

}  // namespace vios::bench
