// Router: the BlockDevice through which all I/O to one backend LUN flows (DESIGN.md §4, §6).
//
// It owns the backend's paths: the LocalPath first, then peer paths (peer_path.h) added and
// removed at run time. Policy (README.md has the argument for its safety):
//  - local path not rerouted -> local. Rerouting starts when the local path turns Lost (an I/O
//    path error or a local I/O outliving local_io_timeout switches at once; probes after
//    lost_after failures) and ends when it is Healthy again (failback).
//  - rerouting -> a Healthy peer path with the fewest requests in flight (round robin among
//    equals), else a Degraded one.
//  - a request failing with a path error (IsPathError) is retried on another usable path; with
//    none usable it is held and retried every retry_interval until io_timeout after its
//    submission, then it fails with kNoPathErrno (-EHOSTUNREACH: the SCSI layer answers ABORTED
//    COMMAND / LOGICAL UNIT COMMUNICATION FAILURE, 0B/08/00).
// Requests are wrapped in pooled contexts: the local path allocates nothing per I/O in steady
// state. A watchdog thread per router times local I/O out and runs held requests.
//
//   Router router("pool0/lun0", std::move(file_backend), RouterOptions{.on_event = ...});
//   router.StartProber({.interval = 1s, .timeout = 2s});
//   router.AddPath(std::make_unique<PeerPath>(...));
//   router.Submit(&request);               // as on any BlockDevice
#pragma once

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/router/path.h"
#include "node-agent/router/path_prober.h"

namespace vios::router {

// kNoPathErrno: the errno of a request no path could serve within io_timeout.
inline constexpr int kNoPathErrno = EHOSTUNREACH;

// RouterEvent is a transition the agent turns into bus messages, status and Kubernetes events.
struct RouterEvent {
  enum class Kind : uint8_t { kPathHealth, kRerouteStarted, kRerouteEnded };
  Kind kind = Kind::kPathHealth;
  std::string router{};  // "<pool>/<backend>"
  std::string path{};    // "local" (peer health is reported by PeerPath's own callback)
  PathHealth from = PathHealth::kHealthy;
  PathHealth to = PathHealth::kHealthy;
  std::string reason{};  // io_error | io_timeout | probe | io_success | set
};

struct RouterOptions {
  // io_timeout bounds how long a request may wait for a usable path (from its submission).
  std::chrono::milliseconds io_timeout{30000};
  // local_io_timeout: a local I/O outstanding longer than this makes the local path Lost at once
  // (new I/O reroutes) and calls local_stalled. 500 ms: well above a SAN's normal worst latency
  // under load (tens of ms), and leaves half of the 1 s failover budget for the reroute itself.
  std::chrono::milliseconds local_io_timeout{500};
  // retry_interval: how often held requests look for a usable path again.
  std::chrono::milliseconds retry_interval{10};
  HealthOptions health{};
  // on_event runs on the thread that saw the transition (I/O completion, prober, watchdog); it
  // must not block and must not call AddPath/RemovePath.
  std::function<void(const RouterEvent&)> on_event{};
  // local_stalled runs on the watchdog thread when a local I/O outlived local_io_timeout. The
  // router cannot take the request back from the backend (the backend still points into the
  // caller's buffers); wire this to a backend reset that fails commands in flight (IscsiBackend:
  // drop the session, they complete with -ENOTCONN) so they are retried on a peer at once. It
  // may run again on later watchdog ticks while more requests time out: make it idempotent.
  std::function<void()> local_stalled{};
};

class Router final : public backend::BlockDevice {
 public:
  struct Stats {
    uint64_t reroutes_io_error = 0;  // reroutes started by reason
    uint64_t reroutes_io_timeout = 0;
    uint64_t reroutes_probe = 0;
    uint64_t reroutes_other = 0;
    uint64_t rerouted_ns = 0;       // total time spent rerouted, including the current period
    uint64_t retries = 0;           // attempts repeated after a path error
    uint64_t local_timeouts = 0;    // local I/O that outlived local_io_timeout
    uint64_t held = 0;              // requests waiting for a usable path now
    uint64_t no_path_failures = 0;  // requests failed with kNoPathErrno
  };

  // Router owns the backend and builds its LocalPath.
  Router(std::string name, std::unique_ptr<backend::BlockDevice> local,
         unsigned failure_threshold = 1);
  Router(std::string name, std::unique_ptr<backend::BlockDevice> local, RouterOptions options);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  uint64_t SizeBytes() const override { return local_->SizeBytes(); }
  uint32_t BlockSize() const override { return local_->BlockSize(); }
  bool SupportsDiscard() const override { return local_->SupportsDiscard(); }
  void Submit(backend::IoRequest* request) override;
  std::string Describe() const override {
    return "router:" + name_ + "(" + local_->Describe() + ")";
  }

  // SetOptions replaces the options at any time (the health part only at construction).
  void SetOptions(RouterOptions options);
  // StartProber starts active probes of the local path (path_prober.h); from then on only
  // probes heal a Lost local path.
  void StartProber(ProberOptions options = {});
  void StopProber();
  // SetProbing applies VIOSCluster spec.paths at run time: the probe interval (the prober is
  // started if it is not running) and failureThreshold (consecutive failed probes -> Lost).
  void SetProbing(std::chrono::milliseconds interval, unsigned lost_after);
  // SetIoTimeout changes RouterOptions::io_timeout alone (spec.paths.ioTimeout): requests held
  // from now on fail after it (held ones are measured from their submission).
  void SetIoTimeout(std::chrono::milliseconds io_timeout);
  const PathProber* prober() const { return prober_.get(); }

  // AddPath adds a peer path; false if a path of that name exists.
  bool AddPath(std::unique_ptr<Path> path);
  // RemovePath removes a peer path by name (requests in flight on it finish there; it is
  // destroyed once idle); false if there is none ("local" cannot be removed).
  bool RemovePath(const std::string& name);
  // ChoosePath returns the path the next request would take (null: none usable, it would wait).
  Path* ChoosePath(const Path* exclude = nullptr) const;
  // Paths in order; the local path first. SharedPaths keeps them alive for the caller.
  std::vector<Path*> Paths() const;
  std::vector<std::shared_ptr<Path>> SharedPaths() const;
  LocalPath* local_path() { return local_path_; }
  backend::BlockDevice* local_backend() { return local_.get(); }
  const std::string& name() const { return name_; }
  bool Rerouting() const { return rerouting_.load(std::memory_order_acquire); }
  Stats GetStats() const;

 private:
  struct Context;
  Context* AcquireContext();
  void ReleaseContext(Context* ctx);
  Path* Choose(const Path* exclude, std::shared_ptr<Path>* ref) const;
  void Dispatch(Context* ctx, Path* path, std::shared_ptr<Path> ref);
  void Done(Context* ctx);
  void Finish(Context* ctx, int result);
  void Hold(Context* ctx);
  void OnLocalHealth(PathHealth from, PathHealth to, const char* reason);
  void Emit(const RouterEvent& event);
  void Watchdog();
  void CheckLocalTimeouts(uint64_t now);
  void RunHeld(uint64_t now);

  void StoreTimes();

  const std::string name_;
  std::unique_ptr<backend::BlockDevice> local_;
  std::mutex options_mutex_;
  RouterOptions options_;  // guarded by options_mutex_ (times also in the atomics below)
  std::atomic<uint64_t> io_timeout_ns_{0}, local_io_timeout_ns_{0}, retry_interval_ns_{0};
  LocalPath* local_path_ = nullptr;

  mutable std::shared_mutex paths_mutex_;
  std::vector<std::shared_ptr<Path>> paths_;    // guarded by paths_mutex_; local first
  std::vector<std::shared_ptr<Path>> retired_;  // guarded by paths_mutex_
  mutable std::atomic<uint64_t> round_robin_{0};

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Context>> contexts_;  // guarded by pool_mutex_
  std::vector<Context*> free_;                      // guarded by pool_mutex_

  std::mutex held_mutex_;
  Context* held_head_ = nullptr;  // guarded by held_mutex_; FIFO
  Context* held_tail_ = nullptr;  // guarded by held_mutex_
  std::atomic<uint64_t> held_count_{0};

  std::mutex state_mutex_;
  std::atomic<bool> rerouting_{false};
  uint64_t rerouting_since_ns_ = 0;  // guarded by state_mutex_
  uint64_t rerouted_ns_ = 0;         // guarded by state_mutex_
  std::atomic<uint64_t> reroutes_io_error_{0}, reroutes_io_timeout_{0}, reroutes_probe_{0},
      reroutes_other_{0}, retries_{0}, local_timeouts_{0}, no_path_failures_{0};

  std::unique_ptr<PathProber> prober_;
  std::atomic<bool> probing_{false};

  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_cv_;
  bool stop_ = false;  // guarded by watchdog_mutex_
  std::thread watchdog_;
};

}  // namespace vios::router
