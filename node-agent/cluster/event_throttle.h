// EventThrottle: keeps a flapping path from flooding the API server with Kubernetes Events
// (DESIGN.md §6: every transition is an event — but at a bounded rate).
//
// A token bucket per key (e.g. "PathLost/pool0/san0/local"): `burst` events at once, then one
// per `refill`; and one bucket over all keys (`global_burst`, one per `global_refill`). An event
// that finds no token is suppressed and counted; the next one allowed for that key reports how
// many were suppressed since, so nothing is silently lost. Not thread-safe (the caller locks).
//
//   EventThrottle throttle;
//   uint64_t suppressed = 0;
//   if (throttle.Allow(key, now, &suppressed)) Send(note + Suppressed(suppressed));
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace vios::agent::cluster {

struct EventThrottleOptions {
  double burst = 4;
  std::chrono::milliseconds refill{std::chrono::seconds(30)};
  double global_burst = 20;
  std::chrono::milliseconds global_refill{std::chrono::seconds(3)};
  size_t max_keys = 256;  // buckets kept; the oldest full ones are forgotten beyond it
};

class EventThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit EventThrottle(EventThrottleOptions options = {}) : options_(options) {
    global_.tokens = options_.global_burst;
  }

  // Allow takes a token for key at now; on true, *suppressed is how many events of this key were
  // refused since the last one allowed.
  bool Allow(const std::string& key, Clock::time_point now, uint64_t* suppressed) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
      if (buckets_.size() >= options_.max_keys) Forget(now);
      it = buckets_.emplace(key, Bucket{options_.burst, now, 0}).first;
    }
    Bucket& b = it->second;
    Refill(&b, now, options_.burst, options_.refill);
    Refill(&global_, now, options_.global_burst, options_.global_refill);
    if (b.tokens < 1 || global_.tokens < 1) {
      ++b.suppressed;
      return false;
    }
    b.tokens -= 1;
    global_.tokens -= 1;
    *suppressed = b.suppressed;
    b.suppressed = 0;
    return true;
  }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
    uint64_t suppressed = 0;
  };
  static void Refill(Bucket* b, Clock::time_point now, double burst,
                     std::chrono::milliseconds refill) {
    if (now > b->last) {
      const double earned = std::chrono::duration<double>(now - b->last).count() /
                            std::chrono::duration<double>(refill).count();
      b->tokens = std::min(burst, b->tokens + earned);
      b->last = now;
    }
  }
  // Forget drops buckets that are full again and owe no suppressed count.
  void Forget(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      Refill(&it->second, now, options_.burst, options_.refill);
      if (it->second.tokens >= options_.burst && it->second.suppressed == 0) {
        it = buckets_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const EventThrottleOptions options_;
  std::map<std::string, Bucket> buckets_;
  Bucket global_;
};

}  // namespace vios::agent::cluster
