// Path: one way to reach a backend LUN, with a health state the Router chooses by (DESIGN.md §6).
//
// Every backend has one LocalPath (the agent's own file/device/libiscsi session), whose health a
// HealthTracker keeps (path_prober.h: passive detection from I/O plus optional active probes).
// Peer paths (peer_path.h) forward I/O to a peer agent that still reaches the backend; the
// router uses them while the local path is Lost.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/backend/io_counters.h"
#include "node-agent/router/path_prober.h"

namespace vios::router {

class Path {
 public:
  virtual ~Path() = default;
  // Name for logs, metrics and status: "local", "peer:<member>".
  virtual std::string Name() const = 0;
  virtual PathHealth Health() const = 0;
  // Device executes the I/O sent along this path.
  virtual backend::BlockDevice* Device() = 0;
  // ReportResult feeds the outcome of one I/O back (the router calls it for each completion), so a
  // path learns of loss from failing I/O.
  virtual void ReportResult(int result) = 0;
  // TransportCounts: for a path through a peer, requests forwarded so far by each transport
  // ("data", "stream", "unary"); empty for other paths.
  virtual std::vector<std::pair<const char*, uint64_t>> TransportCounts() const { return {}; }
  // DataChannel: for a path through a peer, the protection of its connected data channel
  // ("encrypt", "integrity"), null when none is connected or for other paths.
  virtual const char* DataChannel() const { return nullptr; }
  // Statistics of I/O routed along this path.
  backend::IoCounters& counters() { return counters_; }
  const backend::IoCounters& counters() const { return counters_; }
  // Requests the router has in flight on this path (least-outstanding choice among peers).
  std::atomic<int64_t>& outstanding() { return outstanding_; }

 private:
  backend::IoCounters counters_;
  std::atomic<int64_t> outstanding_{0};
};

// LocalPath wraps the agent's own backend; its health is its HealthTracker's.
class LocalPath final : public Path {
 public:
  LocalPath(backend::BlockDevice* device, HealthOptions options = {})
      : device_(device), tracker_(options) {}
  std::string Name() const override { return "local"; }
  PathHealth Health() const override { return tracker_.Health(); }
  backend::BlockDevice* Device() override { return device_; }
  void ReportResult(int result) override { tracker_.OnIoResult(result); }
  // SetHealth overrides the state (tests, an operator's decision).
  void SetHealth(PathHealth health) { tracker_.Force(health, "set"); }
  HealthTracker& tracker() { return tracker_; }

 private:
  backend::BlockDevice* device_;
  HealthTracker tracker_;
};

}  // namespace vios::router
