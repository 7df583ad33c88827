// histogram_test: bucket layout is monotonic and percentiles are within the stated precision.
#include "bench/loadgen/histogram.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vios::bench {
namespace {

TEST(LatencyHistogramTest, BucketsAreMonotonicAndContainTheirValues) {
  size_t last = 0;
  for (uint64_t v = 0; v < (uint64_t{1} << 30); v = v < 100 ? v + 1 : v + v / 7) {
    size_t idx = LatencyHistogram::BucketIndex(v);
    EXPECT_GE(idx, last);
    last = idx;
    uint64_t upper = LatencyHistogram::BucketUpperBound(idx);
    EXPECT_GE(upper, v);
    // Relative bucket width at most 1/32.
    EXPECT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 32.0 + 1.0) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfUniformSamples) {
  LatencyHistogram h;
  for (uint64_t i = 1; i <= 100000; ++i) {
    h.Record(i * 100);  // 100 ns .. 10 ms
  }
  EXPECT_EQ(h.Count(), 100000u);
  EXPECT_EQ(h.MaxNanos(), 10000000u);
  EXPECT_EQ(h.MinNanos(), 100u);
  auto near = [](double got, double want) { return std::abs(got - want) <= want * 0.035; };
  EXPECT_TRUE(near(static_cast<double>(h.PercentileNanos(50)), 5e6)) << h.PercentileNanos(50);
  EXPECT_TRUE(near(static_cast<double>(h.PercentileNanos(99)), 9.9e6)) << h.PercentileNanos(99);
  EXPECT_TRUE(near(h.MeanNanos(), 5.0005e6));
  EXPECT_EQ(h.PercentileNanos(100), h.MaxNanos());
}

TEST(LatencyHistogramTest, TailIsNotHiddenByTheBulk) {
  LatencyHistogram h;
  for (int i = 0; i < 9990; ++i) {
    h.Record(50000);
  }
  for (int i = 0; i < 10; ++i) {
    h.Record(20000000);
  }
  EXPECT_LE(h.PercentileNanos(99), 52000u);
  EXPECT_GE(h.PercentileNanos(99.95), 19000000u);
  LatencyHistogram other;
  other.Record(1);
  h.Merge(other);
  EXPECT_EQ(h.Count(), 10001u);
  EXPECT_EQ(h.MinNanos(), 1u);
}

TEST(LatencyHistogramTest, EmptyAndHugeValues) {
  LatencyHistogram h;
  EXPECT_EQ(h.PercentileNanos(50), 0u);
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.PercentileNanos(50), UINT64_MAX);
}

}  // namespace
}  // namespace vios::bench
