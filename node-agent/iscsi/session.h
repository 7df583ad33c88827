// An iSCSI session (RFC 7143 §4.4): the I_T nexus, the negotiated parameters and the CmdSN
// window. With MaxConnections=1 a session has exactly one connection, which owns it; the
// SessionTable is the process-wide index used for TSIH allocation and for session reinstatement
// (a new login with the same initiator name and ISID closes the old session, §6.3.5 at ERL0).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "node-agent/iscsi/negotiation.h"
#include "node-agent/iscsi/pdu_wire.h"
#include "node-agent/iscsi/target.h"
#include "node-agent/scsi/task.h"

namespace vios::iscsi {

class Session {
 public:
  Session(std::shared_ptr<Target> target, std::string initiator_name, std::array<uint8_t, 6> isid,
          uint16_t tsih, uint16_t tpgt, const SessionParams& params, uint32_t queue_depth);

  Target* target() const { return target_.get(); }  // nullptr for discovery sessions.
  const std::shared_ptr<Target>& shared_target() const { return target_; }
  const scsi::Nexus& nexus() const { return nexus_; }
  const std::string& initiator_name() const { return initiator_name_; }
  uint16_t tsih() const { return tsih_; }
  const SessionParams& params() const { return params_; }
  bool discovery() const { return params_.discovery; }

  // CmdSN window (§4.2.2.1). Check classifies a request's CmdSN; Accept advances ExpCmdSN for a
  // non-immediate command.
  enum class CmdSnCheck { kInWindow, kOutOfWindow };
  CmdSnCheck Check(uint32_t cmd_sn, bool immediate) const;
  void Accept(uint32_t cmd_sn, bool immediate);
  uint32_t exp_cmd_sn() const { return exp_cmd_sn_; }
  // MaxCmdSN shrinks by the tasks in flight so the initiator never exceeds the queue depth.
  uint32_t MaxCmdSn(uint32_t in_flight) const;
  void set_exp_cmd_sn(uint32_t v) { exp_cmd_sn_ = v; }

 private:
  std::shared_ptr<Target> target_;
  std::string initiator_name_;
  std::array<uint8_t, 6> isid_;
  uint16_t tsih_;
  SessionParams params_;
  scsi::Nexus nexus_;
  uint32_t queue_depth_;
  uint32_t exp_cmd_sn_ = 0;
};

// SessionTable indexes live sessions across all event loops. Thread-safe.
class SessionTable {
 public:
  struct Entry {
    std::string initiator_name;
    std::array<uint8_t, 6> isid{};
    std::string target;            // Empty for discovery.
    std::function<void()> closer;  // Closes the owning connection (from any thread).
  };

  // Register allocates a fresh non-zero TSIH and records the session. If a session with the same
  // initiator, ISID and target exists it is removed and its closer returned in *reinstated.
  uint16_t Register(Entry entry, std::function<void()>* reinstated);
  void Unregister(uint16_t tsih);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<uint16_t, Entry> sessions_;  // Guarded by mu_.
  uint16_t next_tsih_ = 1;              // Guarded by mu_.
};

// FormatIsid renders an ISID as 12 hex digits, as in the "i,0x<ISID>" port name (§4.4.1).
std::string FormatIsid(const std::array<uint8_t, 6>& isid);

}  // namespace vios::iscsi
