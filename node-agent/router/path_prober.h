// Path health of the local path to a backend (DESIGN.md §6): a state machine with hysteresis fed
// by passive detection (every I/O result, local I/O timeouts) and by active probes (PathProber: a
// small read at offset 0 through the local device, every interval).
//
//   HealthTracker tracker({.lost_after = 2, .healthy_after = 3});
//   tracker.SetOnChange([](PathHealth from, PathHealth to, const char* reason) { ... });
//   PathProber prober(device, &tracker, {.interval = 1s, .timeout = 2s});
//   prober.Start();   // a thread; Stop() or the destructor ends it
//
// Passive detection switches at once: a path error (IsPathError) or a timed-out I/O makes the path
// Lost on the spot, so the router reroutes within one I/O. Probes move slowly both ways: a failed
// probe makes a Healthy path Degraded, lost_after consecutive failures make it Lost, and a Lost
// path needs healthy_after consecutive good probes to be Healthy again (no flapping failback on a
// link that comes and goes). While a prober runs, I/O successes never heal a Lost path (a late
// completion of an I/O that hung is no proof the path is back); without one (heal_on_io_success)
// the first successful I/O does, as the router's only way to learn of recovery.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "node-agent/backend/block_device.h"

namespace vios::router {

// Health of a path, as in VIOSMember.status (DESIGN.md §3).
enum class PathHealth : uint8_t { kHealthy, kDegraded, kLost };

// PathHealthName: "Healthy", "Degraded", "Lost" (status); PathHealthLabel: lower case (metrics).
const char* PathHealthName(PathHealth health);
const char* PathHealthLabel(PathHealth health);

// IsPathError tells errors that mean "this path failed" (connection lost, timeouts) from errors of
// the medium itself (EIO from the LUN, EINVAL): only the former change path health and are worth
// retrying on another path.
bool IsPathError(int result);

struct HealthOptions {
  unsigned lost_after = 2;           // consecutive failed probes: Healthy/Degraded -> Lost
  unsigned healthy_after = 3;        // consecutive good probes: Lost -> Healthy
  unsigned io_failures_to_lose = 1;  // consecutive I/O path errors -> Lost (Degraded before)
  bool heal_on_io_success = true;    // cleared by PathProber::Start
};

// HealthTracker: thread-safe health state machine. The callback runs on the reporting thread,
// outside the tracker's lock, once per transition; it must not block.
class HealthTracker {
 public:
  using OnChange = std::function<void(PathHealth from, PathHealth to, const char* reason)>;
  explicit HealthTracker(HealthOptions options = {}) : options_(options) {}

  PathHealth Health() const { return health_.load(std::memory_order_acquire); }
  void SetOnChange(OnChange on_change);
  void SetHealOnIoSuccess(bool heal);
  // OnIoResult: one I/O's result (0, or -errno). Cheap when healthy: no lock on success.
  void OnIoResult(int result);
  // OnIoTimeout: an I/O outlived the local I/O timeout: Lost at once.
  void OnIoTimeout();
  // OnProbe: one active probe's outcome.
  void OnProbe(bool ok);
  // Force sets a state (tests, operator override).
  void Force(PathHealth health, const char* reason);
  // SetLostAfter changes how many consecutive failed probes make the path Lost (VIOSCluster
  // spec.paths.failureThreshold); it counts from the next probe on.
  void SetLostAfter(unsigned lost_after);

 private:
  void Transition(PathHealth to, const char* reason, std::unique_lock<std::mutex>& lock);

  HealthOptions options_;
  std::atomic<PathHealth> health_{PathHealth::kHealthy};
  std::atomic<bool> clean_{true};  // Healthy with no failure counted: the lock-free fast path
  std::mutex mu_;
  unsigned probe_failures_ = 0;   // guarded by mu_
  unsigned probe_successes_ = 0;  // guarded by mu_
  unsigned io_failures_ = 0;      // guarded by mu_
  OnChange on_change_;            // guarded by mu_ (copied out to call)
};

struct ProberOptions {
  std::chrono::milliseconds interval{1000};  // between probes
  std::chrono::milliseconds timeout{2000};   // a probe slower than this failed
  uint32_t probe_bytes = 0;                  // 0: one logical block
};

// PathProber: the active half. One thread per local path; each probe is a read of one block at
// offset 0 through the local device (the backend itself, not the router). A probe that hangs is
// counted as a timeout at `timeout` and no further probe is sent until it returns (its buffer
// stays owned by the backend); meanwhile each interval counts one more failure.
class PathProber {
 public:
  struct Stats {
    uint64_t success = 0;
    uint64_t failure = 0;  // the read failed
    uint64_t timeout = 0;  // no answer within timeout
  };

  PathProber(backend::BlockDevice* device, HealthTracker* tracker, ProberOptions options = {});
  ~PathProber();
  PathProber(const PathProber&) = delete;
  PathProber& operator=(const PathProber&) = delete;

  void Start();
  // Stop ends the thread; it waits for a probe still inside the backend.
  void Stop();
  // SetInterval changes the time between probes at run time (the current wait is cut short).
  void SetInterval(std::chrono::milliseconds interval);
  std::chrono::milliseconds interval() const;
  Stats GetStats() const { return {success_.load(), failure_.load(), timeout_.load()}; }

 private:
  struct Probe final : backend::IoCompletion {
    PathProber* prober = nullptr;
    backend::IoRequest request;
    std::vector<uint8_t> buffer;
    void IoDone(backend::IoRequest* r) override;
  };
  void Run();

  backend::BlockDevice* device_;
  HealthTracker* tracker_;
  ProberOptions options_;  // interval guarded by mu_
  Probe probe_;
  mutable std::mutex mu_;
  bool retimed_ = false;  // guarded by mu_: interval changed during a wait
  std::condition_variable cv_;
  bool stop_ = false;         // guarded by mu_
  bool outstanding_ = false;  // guarded by mu_: probe_ is inside the backend
  int last_result_ = 0;       // guarded by mu_
  std::atomic<uint64_t> success_{0}, failure_{0}, timeout_{0};
  std::thread thread_;
};

}  // namespace vios::router
