// EventThrottle: a burst per key, then one per refill; a global cap; suppressed events counted.
#include "node-agent/cluster/event_throttle.h"

#include <gtest/gtest.h>

namespace vios::agent::cluster {
namespace {

using namespace std::chrono_literals;

TEST(EventThrottleTest, FlappingKeyIsCappedAndReportsWhatItSuppressed) {
  EventThrottle t({.burst = 3, .refill = 10s, .global_burst = 100, .global_refill = 1s});
  const auto t0 = EventThrottle::Clock::now();
  uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t.Allow("PathLost/local", t0, &suppressed));
    EXPECT_EQ(suppressed, 0u);
  }
  // A path flapping 50 times within a second: nothing more gets through.
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(t.Allow("PathLost/local", t0 + 20ms * i, &suppressed));
  // Another key is not affected.
  EXPECT_TRUE(t.Allow("ReroutingStarted/local", t0 + 1s, &suppressed));
  // One refill later one more is allowed, and it carries the count of the suppressed.
  EXPECT_TRUE(t.Allow("PathLost/local", t0 + 10s, &suppressed));
  EXPECT_EQ(suppressed, 50u);
  EXPECT_FALSE(t.Allow("PathLost/local", t0 + 10s, &suppressed));
  EXPECT_TRUE(t.Allow("PathLost/local", t0 + 20s, &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

TEST(EventThrottleTest, GlobalCapHoldsOverManyKeys) {
  EventThrottle t({.burst = 5, .refill = 1s, .global_burst = 10, .global_refill = 1s});
  const auto t0 = EventThrottle::Clock::now();
  uint64_t suppressed = 0;
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += t.Allow("k" + std::to_string(i), t0, &suppressed);
  EXPECT_EQ(allowed, 10);
  EXPECT_TRUE(t.Allow("k50", t0 + 1s, &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

}  // namespace
}  // namespace vios::agent::cluster
