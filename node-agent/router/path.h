// Path: one way to reach a backend LUN, with a health state the Router chooses by (DESIGN.md §6).
//
// Today every backend has exactly one LocalPath (the agent's own file/device/libiscsi session).
// The reroute issue adds peer paths (I/O forwarded to a healthy peer agent over the peer channel):
// implement Path, give it to Router::AddPath, and the router starts using it when the local path
// is Lost.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "node-agent/backend/block_device.h"
#include "node-agent/backend/io_counters.h"

namespace vios::router {

// Health of a path, as in VIOSMember.status (DESIGN.md §3).
enum class PathHealth : uint8_t { kHealthy, kDegraded, kLost };

const char* PathHealthName(PathHealth health);

class Path {
 public:
  virtual ~Path() = default;
  // Name for logs, metrics and status: "local", "peer:<node>".
  virtual std::string Name() const = 0;
  virtual PathHealth Health() const = 0;
  // Device executes the I/O sent along this path.
  virtual backend::BlockDevice* Device() = 0;
  // ReportResult feeds the outcome of one I/O back (the router calls it for each completion), so a
  // path can learn of loss from failing I/O; probes may call SetHealth directly.
  virtual void ReportResult(int result) = 0;
  // Statistics of I/O routed along this path.
  backend::IoCounters& counters() { return counters_; }

 private:
  backend::IoCounters counters_;
};

// IsPathError tells errors that mean "this path failed" (connection lost, timeouts) from errors of
// the medium itself (EIO from the LUN, EINVAL): only the former make a path Degraded/Lost and are
// worth retrying on another path.
bool IsPathError(int result);

// LocalPath wraps the agent's own backend. It turns Degraded on the first path error and Lost
// after failure_threshold consecutive ones; any success makes it Healthy again.
class LocalPath final : public Path {
 public:
  LocalPath(backend::BlockDevice* device, unsigned failure_threshold = 3)
      : device_(device), failure_threshold_(failure_threshold) {}
  std::string Name() const override { return "local"; }
  PathHealth Health() const override { return health_.load(std::memory_order_relaxed); }
  backend::BlockDevice* Device() override { return device_; }
  void ReportResult(int result) override;
  void SetHealth(PathHealth health) { health_.store(health); }

 private:
  backend::BlockDevice* device_;
  const unsigned failure_threshold_;
  std::atomic<unsigned> consecutive_failures_{0};
  std::atomic<PathHealth> health_{PathHealth::kHealthy};
};

}  // namespace vios::router
