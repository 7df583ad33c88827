// LatencyHistogram: fixed-memory log-linear histogram of latencies in nanoseconds.
//
// Values below 64 ns are exact; above, each power of two is split into 32 buckets, so a
// percentile is within ~3% of the true value. Recording never allocates (one array, sized once).
//
//   LatencyHistogram h;
//   h.Record(elapsed_ns);
//   uint64_t p99 = h.PercentileNanos(99.0);
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace vios::bench {

class LatencyHistogram {
 public:
  // Record adds one sample.
  void Record(uint64_t nanos);
  // Merge adds all samples of other.
  void Merge(const LatencyHistogram& other);

  uint64_t Count() const { return count_; }
  uint64_t MaxNanos() const { return max_; }
  uint64_t MinNanos() const { return count_ == 0 ? 0 : min_; }
  double MeanNanos() const;
  // PercentileNanos returns the upper bound of the bucket holding the p-th percentile (0 < p <=
  // 100), clamped to the largest sample; 0 if there are no samples.
  uint64_t PercentileNanos(double p) const;

  // BucketIndex and BucketUpperBound expose the bucket layout (for tests).
  static size_t BucketIndex(uint64_t nanos);
  static uint64_t BucketUpperBound(size_t index);

 private:
  static constexpr int kSubBits = 5;                     // 32 buckets per power of two.
  static constexpr int kLinearLimitBits = kSubBits + 1;  // Exact below 64 ns.
  static constexpr int kMaxBits = 44;                    // ~4.9 hours; larger values clamp.
  static constexpr size_t kBuckets =
      (size_t{1} << kLinearLimitBits) + (kMaxBits - kLinearLimitBits) * (size_t{1} << kSubBits);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  long double sum_ = 0;
};

}  // namespace vios::bench
