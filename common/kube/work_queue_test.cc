// Unit tests for the rate-limited work queue, driven by a fake clock.
#include "common/kube/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace vios::kube {
namespace {

using std::chrono::milliseconds;

TEST(WorkQueueTest, DeduplicatesQueuedKeys) {
  RateLimitingQueue q;
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(q.TryGet(), "a");
  EXPECT_EQ(q.TryGet(), "b");
  EXPECT_FALSE(q.TryGet());
}

TEST(WorkQueueTest, KeyAddedWhileProcessingIsRequeuedOnDoneOnly) {
  RateLimitingQueue q;
  q.Add("a");
  auto key = q.TryGet();
  ASSERT_EQ(key, "a");
  q.Add("a");  // dirty while processing: must not be handed to a second worker
  q.Add("a");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_FALSE(q.TryGet());
  q.Done("a");
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(q.TryGet(), "a");
  q.Done("a");
  EXPECT_FALSE(q.TryGet());
}

TEST(WorkQueueTest, RateLimitedBackoffDoublesPerKeyUntilForget) {
  FakeClock clock;
  RateLimitingQueue q({milliseconds(5), milliseconds(40)}, &clock);
  EXPECT_EQ(q.NextBackoff("a"), milliseconds(5));
  q.AddRateLimited("a");
  EXPECT_FALSE(q.TryGet());
  EXPECT_EQ(q.Waiting(), 1u);
  clock.Advance(milliseconds(4));
  EXPECT_FALSE(q.TryGet());
  clock.Advance(milliseconds(1));
  ASSERT_EQ(q.TryGet(), "a");
  q.Done("a");
  EXPECT_EQ(q.NumRequeues("a"), 1);
  EXPECT_EQ(q.NextBackoff("a"), milliseconds(10));
  q.AddRateLimited("a");
  q.AddRateLimited("a");
  q.AddRateLimited("a");
  EXPECT_EQ(q.NumRequeues("a"), 4);
  EXPECT_EQ(q.NextBackoff("a"), milliseconds(40));  // capped at max_delay
  EXPECT_EQ(q.NextBackoff("b"), milliseconds(5));   // other keys unaffected
  clock.Advance(milliseconds(10));                  // earliest pending time (10 ms) wins
  EXPECT_EQ(q.TryGet(), "a");
  q.Done("a");
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  EXPECT_EQ(q.NextBackoff("a"), milliseconds(5));
}

TEST(WorkQueueTest, AddAfterKeepsEarliestDeadlineAndOrder) {
  FakeClock clock;
  RateLimitingQueue q({}, &clock);
  q.AddAfter("late", milliseconds(100));
  q.AddAfter("early", milliseconds(50));
  q.AddAfter("late", milliseconds(30));  // earlier than the pending 100 ms
  clock.Advance(milliseconds(60));
  EXPECT_EQ(q.TryGet(), "late");
  EXPECT_EQ(q.TryGet(), "early");
  q.AddAfter("now", milliseconds(0));
  EXPECT_EQ(q.Len(), 1u);
}

TEST(WorkQueueTest, BlockedGetWakesWhenFakeClockReachesDeadline) {
  FakeClock clock;
  RateLimitingQueue q({}, &clock);
  q.AddAfter("a", std::chrono::seconds(30));
  std::atomic<bool> got{false};
  std::thread worker([&] {
    auto key = q.Get();
    got = key.has_value() && *key == "a";
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(got.load());
  clock.Advance(std::chrono::seconds(30));
  worker.join();
  EXPECT_TRUE(got.load());
}

TEST(WorkQueueTest, ShutDownWakesBlockedGetAndRefusesNewKeys) {
  RateLimitingQueue q;
  std::atomic<bool> returned{false};
  std::thread worker([&] {
    EXPECT_FALSE(q.Get());
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(20));
  q.ShutDown();
  worker.join();
  EXPECT_TRUE(returned.load());
  q.Add("x");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_TRUE(q.ShuttingDown());
}

TEST(WorkQueueTest, ConcurrentWorkersNeverProcessTheSameKeyTogether) {
  RateLimitingQueue q;
  std::atomic<int> in_flight{0};
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        if (in_flight.fetch_add(1) != 0) overlap = true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        in_flight.fetch_sub(1);
        processed++;
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    q.Add("same");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  while (q.Len() > 0 || q.Processing() > 0) std::this_thread::sleep_for(milliseconds(1));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_GT(processed.load(), 1);
  EXPECT_LT(processed.load(), 200);  // adds during processing collapse
}

}  // namespace
}  // namespace vios::kube
