// Path health state machine and active prober (path_prober.h).
#include "node-agent/router/path_prober.h"

#include <algorithm>

#include <cerrno>

#include "common/log/log.h"

namespace vios::router {

const char* PathHealthName(PathHealth health) {
  switch (health) {
    case PathHealth::kHealthy:
      return "Healthy";
    case PathHealth::kDegraded:
      return "Degraded";
    case PathHealth::kLost:
      return "Lost";
  }
  return "Unknown";
}

const char* PathHealthLabel(PathHealth health) {
  switch (health) {
    case PathHealth::kHealthy:
      return "healthy";
    case PathHealth::kDegraded:
      return "degraded";
    case PathHealth::kLost:
      return "lost";
  }
  return "unknown";
}

bool IsPathError(int result) {
  switch (-result) {
    case ENOTCONN:
    case ETIMEDOUT:
    case ECONNRESET:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ESHUTDOWN:
    case EPIPE:
      return true;
    default:
      return false;
  }
}

void HealthTracker::SetOnChange(OnChange on_change) {
  std::lock_guard<std::mutex> lock(mu_);
  on_change_ = std::move(on_change);
}

void HealthTracker::SetLostAfter(unsigned lost_after) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.lost_after = std::max(1u, lost_after);
}

void HealthTracker::SetHealOnIoSuccess(bool heal) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.heal_on_io_success = heal;
}

void HealthTracker::Transition(PathHealth to, const char* reason,
                               std::unique_lock<std::mutex>& lock) {
  const PathHealth from = health_.load(std::memory_order_relaxed);
  clean_.store(to == PathHealth::kHealthy && io_failures_ == 0 && probe_failures_ == 0,
               std::memory_order_release);
  if (from == to) {
    return;
  }
  health_.store(to, std::memory_order_release);
  OnChange callback = on_change_;
  lock.unlock();
  if (callback) {
    callback(from, to, reason);
  }
  lock.lock();
}

void HealthTracker::OnIoResult(int result) {
  const bool failed = result != 0 && IsPathError(result);
  if (!failed && clean_.load(std::memory_order_acquire)) {
    return;  // The per-I/O fast path: healthy and nothing to forget.
  }
  std::unique_lock<std::mutex> lock(mu_);
  const PathHealth now = health_.load(std::memory_order_relaxed);
  if (!failed) {
    io_failures_ = 0;
    if (now == PathHealth::kLost) {
      if (options_.heal_on_io_success) {
        probe_failures_ = 0;
        Transition(PathHealth::kHealthy, "io_success", lock);
      }
      return;
    }
    Transition(probe_failures_ == 0 ? PathHealth::kHealthy : now, "io_success", lock);
    return;
  }
  ++io_failures_;
  probe_successes_ = 0;
  Transition(
      io_failures_ >= options_.io_failures_to_lose ? PathHealth::kLost : PathHealth::kDegraded,
      "io_error", lock);
}

void HealthTracker::OnIoTimeout() {
  std::unique_lock<std::mutex> lock(mu_);
  probe_successes_ = 0;
  ++io_failures_;
  Transition(PathHealth::kLost, "io_timeout", lock);
}

void HealthTracker::OnProbe(bool ok) {
  std::unique_lock<std::mutex> lock(mu_);
  const PathHealth now = health_.load(std::memory_order_relaxed);
  if (ok) {
    probe_failures_ = 0;
    ++probe_successes_;
    if (now != PathHealth::kLost || probe_successes_ >= options_.healthy_after) {
      io_failures_ = 0;
      Transition(PathHealth::kHealthy, "probe", lock);
    }
    return;
  }
  probe_successes_ = 0;
  ++probe_failures_;
  if (probe_failures_ >= options_.lost_after) {
    Transition(PathHealth::kLost, "probe", lock);
  } else if (now == PathHealth::kHealthy) {
    Transition(PathHealth::kDegraded, "probe", lock);
  } else {
    Transition(now, "probe", lock);
  }
}

void HealthTracker::Force(PathHealth health, const char* reason) {
  std::unique_lock<std::mutex> lock(mu_);
  probe_failures_ = probe_successes_ = io_failures_ = 0;
  Transition(health, reason, lock);
}

PathProber::PathProber(backend::BlockDevice* device, HealthTracker* tracker, ProberOptions options)
    : device_(device), tracker_(tracker), options_(options) {
  probe_.prober = this;
  probe_.buffer.resize(options_.probe_bytes != 0 ? options_.probe_bytes : device_->BlockSize());
}

PathProber::~PathProber() { Stop(); }

void PathProber::Start() {
  if (thread_.joinable()) {
    return;
  }
  tracker_->SetHealOnIoSuccess(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void PathProber::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !outstanding_; });  // the backend still owns probe_
}

void PathProber::SetInterval(std::chrono::milliseconds interval) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (options_.interval == interval) return;
    options_.interval = interval;
    retimed_ = true;
  }
  cv_.notify_all();
}

std::chrono::milliseconds PathProber::interval() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.interval;
}

void PathProber::Probe::IoDone(backend::IoRequest* r) {
  std::lock_guard<std::mutex> lock(prober->mu_);
  prober->last_result_ = r->result;
  prober->outstanding_ = false;
  prober->cv_.notify_all();
}

void PathProber::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!outstanding_) {
      outstanding_ = true;
      probe_.request = backend::IoRequest{};
      probe_.request.op = backend::IoOp::kRead;
      probe_.request.offset = 0;
      probe_.request.read_buffer = std::span<uint8_t>(probe_.buffer);
      probe_.request.completion = &probe_;
      lock.unlock();
      device_->Submit(&probe_.request);
      lock.lock();
      const bool done =
          cv_.wait_for(lock, options_.timeout, [this] { return !outstanding_ || stop_; });
      if (stop_) {
        break;
      }
      if (done) {
        const int result = last_result_;
        lock.unlock();
        // A medium error at block 0 still proves the path carries commands.
        const bool ok = !IsPathError(result);
        (result == 0 ? success_ : failure_).fetch_add(1, std::memory_order_relaxed);
        tracker_->OnProbe(ok);
        lock.lock();
      } else {
        lock.unlock();
        timeout_.fetch_add(1, std::memory_order_relaxed);
        tracker_->OnProbe(false);
        lock.lock();
      }
    } else {
      // The previous probe is still inside the backend: the path is still not answering.
      lock.unlock();
      timeout_.fetch_add(1, std::memory_order_relaxed);
      tracker_->OnProbe(false);
      lock.lock();
    }
    retimed_ = false;
    cv_.wait_for(lock, options_.interval, [this] { return stop_ || retimed_; });
  }
}

}  // namespace vios::router
