// IoCounters: plain atomic I/O statistics for one logical unit, backend or path (DESIGN.md §9).
//
// Data-path code records into these lock-free; the metrics exporter (prometheus-cpp, wired by the
// agent) reads them on scrape. Latency buckets are cumulative-free: bucket i counts operations with
// latency <= kLatencyBoundsUs[i] and > the previous bound; the last bucket is +Inf.
//
//   counters.Record(IoCounters::Kind::kRead, bytes, latency_ns, ok);
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vios::backend {

struct IoCounters {
  enum class Kind : uint8_t { kRead, kWrite, kOther };

  // Upper bounds of the latency buckets in microseconds; one more bucket (+Inf) follows.
  static constexpr std::array<uint64_t, 12> kLatencyBoundsUs = {
      50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000, 10000000};
  static constexpr size_t kBuckets = kLatencyBoundsUs.size() + 1;

  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> others{0};  // flush, discard, write zeroes, non-I/O commands
  std::atomic<uint64_t> read_bytes{0};
  std::atomic<uint64_t> write_bytes{0};
  std::atomic<uint64_t> errors{0};
  std::array<std::atomic<uint64_t>, kBuckets> latency_buckets{};
  std::atomic<uint64_t> latency_sum_ns{0};

  // Record counts one completed operation.
  void Record(Kind kind, uint64_t bytes, uint64_t latency_ns, bool ok) {
    switch (kind) {
      case Kind::kRead:
        reads.fetch_add(1, std::memory_order_relaxed);
        read_bytes.fetch_add(bytes, std::memory_order_relaxed);
        break;
      case Kind::kWrite:
        writes.fetch_add(1, std::memory_order_relaxed);
        write_bytes.fetch_add(bytes, std::memory_order_relaxed);
        break;
      case Kind::kOther:
        others.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    if (!ok) {
      errors.fetch_add(1, std::memory_order_relaxed);
    }
    latency_buckets[BucketFor(latency_ns)].fetch_add(1, std::memory_order_relaxed);
    latency_sum_ns.fetch_add(latency_ns, std::memory_order_relaxed);
  }

  // BucketFor returns the bucket index for a latency.
  static size_t BucketFor(uint64_t latency_ns) {
    const uint64_t us = latency_ns / 1000;
    for (size_t i = 0; i < kLatencyBoundsUs.size(); ++i) {
      if (us <= kLatencyBoundsUs[i]) {
        return i;
      }
    }
    return kBuckets - 1;
  }
};

}  // namespace vios::backend
