// A rate-limited work queue of keys, the engine of a reconcile loop (the semantics of client-go's
// workqueue): a key is queued at most once; a key being processed that is added again is
// processed again after Done; failures back off exponentially per key.
//
//   kube::RateLimitingQueue queue;
//   informer.AddHandler({.on_add = [&](const json& o) { queue.Add(kube::KeyOf(o)); }, ...});
//   while (auto key = queue.Get()) {
//     try { Reconcile(*key); queue.Forget(*key); }
//     catch (const std::exception&) { queue.AddRateLimited(*key); }
//     queue.Done(*key);
//   }
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/kube/clock.h"

namespace vios::kube {

// RateLimiterOptions: the n-th consecutive failure of a key waits base_delay * 2^(n-1), at most
// max_delay.
struct RateLimiterOptions {
  std::chrono::milliseconds base_delay{5};
  std::chrono::milliseconds max_delay{std::chrono::seconds(300)};
};

class RateLimitingQueue {
 public:
  explicit RateLimitingQueue(RateLimiterOptions options = {},
                             const Clock* clock = RealClock::Instance());
  ~RateLimitingQueue();
  RateLimitingQueue(const RateLimitingQueue&) = delete;
  RateLimitingQueue& operator=(const RateLimitingQueue&) = delete;

  // Add queues key now unless it is already queued; while key is being processed it is marked
  // dirty and queued again by Done.
  void Add(const std::string& key);
  // AddAfter queues key once delay has passed (the earliest of several pending times wins).
  void AddAfter(const std::string& key, Clock::Duration delay);
  // AddRateLimited queues key after its per-key backoff and counts a failure.
  void AddRateLimited(const std::string& key);
  // Forget clears key's failure count (call after a successful reconcile).
  void Forget(const std::string& key);
  // NumRequeues is key's current failure count.
  int NumRequeues(const std::string& key) const;
  // NextBackoff is the delay AddRateLimited would use now for key.
  Clock::Duration NextBackoff(const std::string& key) const;

  // Get blocks until a key is ready and marks it processing; nullopt once shut down and empty.
  std::optional<std::string> Get();
  // TryGet is Get without blocking (nullopt when nothing is ready).
  std::optional<std::string> TryGet();
  // Done ends processing of key; a key added meanwhile is queued again.
  void Done(const std::string& key);

  // ShutDown wakes every Get; delayed keys are dropped, queued keys can still be drained.
  void ShutDown();
  bool ShuttingDown() const;

  // Len counts keys ready to be processed (the depth metric); Waiting counts delayed keys;
  // Processing counts keys handed out and not Done.
  size_t Len() const;
  size_t Waiting() const;
  size_t Processing() const;

 private:
  void AddLocked(const std::string& key);
  void PromoteReadyLocked();
  Clock::Duration BackoffLocked(int failures) const;

  const RateLimiterOptions options_;
  const Clock* clock_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;                      // queued or to be re-queued on Done
  std::unordered_set<std::string> processing_;                 // handed out by Get, not Done yet
  std::unordered_map<std::string, Clock::TimePoint> waiting_;  // key -> ready time
  std::unordered_map<std::string, int> failures_;
  bool shutting_down_ = false;
};

}  // namespace vios::kube
