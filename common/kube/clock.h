// An injectable monotonic clock, so that backoff, leases and event aggregation can be tested
// without sleeping.
//
//   kube::FakeClock clock;
//   kube::RateLimitingQueue queue({}, &clock);
//   queue.AddRateLimited("ns/a");
//   clock.Advance(std::chrono::milliseconds(5));   // the item becomes ready
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace vios::kube {

// Clock is a monotonic time source that can also block until a time point.
class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;

  virtual TimePoint Now() const = 0;
  // WaitUntil waits on cv (lock held) until deadline, a notification, or a spurious wakeup;
  // callers re-check their condition in a loop.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) const = 0;
};

// RealClock is std::chrono::steady_clock.
class RealClock : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    cv.wait_until(lock, deadline);
  }
  // Instance is a process-wide RealClock for default arguments.
  static RealClock* Instance() {
    static RealClock clock;
    return &clock;
  }
};

// FakeClock moves only when Advance is called. Waiters poll every few real milliseconds, so an
// Advance is noticed promptly without the clock knowing every waiter's mutex.
class FakeClock : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    if (Now() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(2));
  }
  void Advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_ = TimePoint(std::chrono::hours(1000));
};

}  // namespace vios::kube
