// Target-side configuration objects: a Target is one virtual port identity (IQN, alias, CHAP
// secrets, initiator ACL, the SCSI Device behind it); the TargetRegistry holds them and can add or
// remove targets while sessions run (DESIGN.md §4 "Virtual port").
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node-agent/iscsi/chap.h"
#include "node-agent/scsi/device.h"

namespace vios::iscsi {

// TargetCounters are plain atomics the lead's metrics code reads (prometheus-cpp lives outside).
struct TargetCounters {
  std::atomic<uint64_t> commands{0};  // SCSI commands completed.
  std::atomic<uint64_t> read_commands{0};
  std::atomic<uint64_t> write_commands{0};
  std::atomic<uint64_t> read_bytes{0};      // Data-In bytes sent.
  std::atomic<uint64_t> write_bytes{0};     // Data-Out bytes received and submitted.
  std::atomic<uint64_t> errors{0};          // Commands with non-GOOD status.
  std::atomic<uint64_t> latency_ns_sum{0};  // Submit-to-response, summed over commands.
  std::atomic<uint64_t> logins{0};
  std::atomic<uint64_t> login_failures{0};
  std::atomic<uint64_t> protocol_errors{0};  // Rejects and connections closed for bad input.
  std::atomic<uint64_t> active_sessions{0};
};

struct TargetConfig {
  std::string iqn;
  std::string alias;
  // CHAP: when chap.secret is empty, AuthMethod=None; otherwise CHAP is required, and mutual
  // CHAP as well when chap.mutual_secret is set.
  ChapCredentials chap;
  // ACL: initiator names allowed to log in and to see this target in SendTargets. "*" allows all.
  std::vector<std::string> allowed_initiators;
  // Portal groups (TargetPortalGroupTag) this target is reachable through; empty = all portals.
  // A pod's port gets its own portal so that it exposes only its own device.
  std::vector<uint16_t> portal_groups;
};

// ConnectionHandle is what a Target may do to a connection attached to it, from any thread. Both
// functions post to the connection's event loop; on a connection that is already gone they do
// nothing (abort still calls done).
struct ConnectionHandle {
  std::string initiator_port;  // The session's scsi::Nexus::initiator_port ("<name>,i,0x<ISID>").
  std::function<void()> close;
  // abort(lun, done) aborts the connection's tasks (all, or those addressed to lun) on behalf of
  // another I_T nexus: no response is sent for them (TAS=0, SAM-5 §5.6), and done runs once the
  // Device has returned every one of them.
  std::function<void(std::optional<uint64_t> lun, std::function<void()> done)> abort;
};

class Target {
 public:
  Target(TargetConfig config, scsi::Device* device);

  const TargetConfig& config() const { return config_; }
  const std::string& iqn() const { return config_.iqn; }
  scsi::Device* device() const { return device_; }
  TargetCounters& counters() { return counters_; }

  bool InitiatorAllowed(std::string_view initiator) const;
  bool OnPortalGroup(uint16_t tpgt) const;

  // Connection accounting so removal can wait until nothing uses the Device any more.
  // Attach registers a connection's handle and fails once the target is removed; Detach is called
  // when the connection and all its tasks are gone.
  bool Attach(uint64_t connection_key, ConnectionHandle handle);
  void Detach(uint64_t connection_key);
  // AbortTasksOf aborts every task of the sessions whose initiator port is initiator_port (the
  // victims of PREEMPT AND ABORT, SPC-4, "Preempting and aborting") and waits until the Device has
  // returned them, so none of them can still change the medium. False if timeout passed first. Do
  // not call it from an event loop thread.
  bool AbortTasksOf(std::string_view initiator_port, std::chrono::milliseconds timeout);
  // AbortOthers aborts the tasks of every connection except except_key (all tasks, or those for
  // lun): the third-party part of CLEAR TASK SET, LOGICAL UNIT RESET and target resets. one_done
  // runs once per affected connection when its tasks are back; returns how many there are.
  size_t AbortOthers(uint64_t except_key, std::optional<uint64_t> lun,
                     const std::function<void()>& one_done);
  // CloseOthers closes every connection except except_key (TARGET COLD RESET ends all sessions,
  // RFC 7143 §11.5.1).
  void CloseOthers(uint64_t except_key);
  // Remove closes every attached connection and waits until all have detached. Do not call it
  // from an event loop thread.
  void Remove();
  bool removed() const { return removed_.load(); }

 private:
  TargetConfig config_;
  scsi::Device* device_;
  TargetCounters counters_;
  std::atomic<bool> removed_{false};
  std::mutex mu_;
  std::condition_variable idle_;
  std::map<uint64_t, ConnectionHandle> attached_;  // Guarded by mu_.
};

// TargetRegistry maps IQN to Target. Thread-safe.
class TargetRegistry {
 public:
  // Add fails (false) if a target with the same IQN exists.
  bool Add(std::shared_ptr<Target> target);
  std::shared_ptr<Target> Find(std::string_view iqn) const;
  std::vector<std::shared_ptr<Target>> List() const;
  // Remove unregisters the target, closes its sessions and waits for their in-flight commands;
  // afterwards the target's Device is no longer used. False if unknown.
  bool Remove(std::string_view iqn);
  // AbortTasksOf runs Target::AbortTasksOf on the target of a SCSI target port name
  // ("<iqn>,t,0x<tag>", scsi::Nexus::target_port). True when that port is not served here.
  bool AbortTasksOf(std::string_view target_port, std::string_view initiator_port,
                    std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Target>, std::less<>> targets_;  // Guarded by mu_.
};

}  // namespace vios::iscsi
