// ReservationPolicy: the one hook where reservations (SPC-2 RESERVE/RELEASE and SPC-4 §5.13
// persistent reservations) plug into a logical unit.
//
// The logical unit asks the policy before executing every command whether the nexus may run it
// (otherwise RESERVATION CONFLICT), and hands it the reservation commands themselves
// (RESERVE(6/10), RELEASE(6/10), PERSISTENT RESERVE IN/OUT). A later issue installs a cluster-wide
// PR policy whose state lives in VIOSVolume.status.reservation (DESIGN.md §7); Spc2Reservations is
// the simple in-process one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "node-agent/scsi/device.h"
#include "node-agent/scsi/task.h"

namespace vios::scsi {

class ReservationPolicy {
 public:
  virtual ~ReservationPolicy() = default;

  // Handles reports whether the policy executes commands with this opcode itself
  // (0x16/0x56 RESERVE, 0x17/0x57 RELEASE, 0x5E/0x5F PERSISTENT RESERVE IN/OUT). Opcodes it does
  // not handle answer INVALID COMMAND OPERATION CODE and are not listed by REPORT SUPPORTED
  // OPCODES.
  virtual bool Handles(uint8_t opcode) const = 0;

  // Allows is consulted before every other command (cdb already validated); false makes the
  // logical unit answer RESERVATION CONFLICT without executing it. Called on the submitting thread;
  // must not block.
  virtual bool Allows(const Nexus& nexus, const uint8_t* cdb, size_t cdb_length) = 0;

  // Execute runs a reservation command and completes the task (possibly asynchronously, e.g. after
  // the cluster database accepted the new state).
  virtual void Execute(Task* task) = 0;

  // Lifecycle notifications from the Device.
  virtual void NexusRemoved(const Nexus& nexus) { (void)nexus; }
  virtual void Reset(TaskManagementFunction function, const Nexus& nexus) {
    (void)function;
    (void)nexus;
  }
};

}  // namespace vios::scsi
