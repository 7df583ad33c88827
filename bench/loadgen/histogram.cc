// LatencyHistogram: bucket arithmetic and percentile queries (see histogram.h).
#include "bench/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace vios::bench {

size_t LatencyHistogram::BucketIndex(uint64_t nanos) {
  constexpr uint64_t kLinear = uint64_t{1} << kLinearLimitBits;
  if (nanos < kLinear) {
    return static_cast<size_t>(nanos);
  }
  int msb = 63 - std::countl_zero(nanos);
  if (msb >= kMaxBits) {
    return kBuckets - 1;
  }
  int shift = msb - kSubBits;
  uint64_t sub = (nanos >> shift) - (uint64_t{1} << kSubBits);  // 0..31
  return static_cast<size_t>(
      kLinear + static_cast<uint64_t>(msb - kLinearLimitBits) * (uint64_t{1} << kSubBits) + sub);
}

uint64_t LatencyHistogram::BucketUpperBound(size_t index) {
  constexpr uint64_t kLinear = uint64_t{1} << kLinearLimitBits;
  if (index < kLinear) {
    return index;
  }
  uint64_t rel = index - kLinear;
  int msb = static_cast<int>(rel >> kSubBits) + kLinearLimitBits;
  uint64_t sub = (rel & ((uint64_t{1} << kSubBits) - 1)) + (uint64_t{1} << kSubBits);
  int shift = msb - kSubBits;
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::Record(uint64_t nanos) {
  ++buckets_[BucketIndex(nanos)];
  ++count_;
  max_ = std::max(max_, nanos);
  min_ = std::min(min_, nanos);
  sum_ += static_cast<long double>(nanos);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) {
    buckets_[i] += other.buckets_[i];
  }
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
  sum_ += other.sum_;
}

double LatencyHistogram::MeanNanos() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

uint64_t LatencyHistogram::PercentileNanos(double p) const {
  if (count_ == 0) {
    return 0;
  }
  p = std::clamp(p, 0.0, 100.0);
  // Rank of the sample at or above which p percent of samples lie (nearest-rank method).
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      // The last bucket also holds everything too large to bucket: its bound is the maximum.
      return i + 1 == kBuckets ? max_ : std::min(BucketUpperBound(i), max_);
    }
  }
  return max_;
}

}  // namespace vios::bench
