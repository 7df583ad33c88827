// A SCSI target device as a transport sees it: the logical units behind one virtual port.
//
// The iSCSI layer (node-agent/iscsi) talks to the SCSI layer only through this interface and
// task.h. A Device routes each Task by LUN, answers REPORT LUNS and commands for absent LUNs itself
// (SPC-4 §6.6 / §4.6: INQUIRY with peripheral qualifier 3, otherwise LOGICAL UNIT NOT SUPPORTED),
// and keeps per-nexus state such as unit attentions.
#pragma once

#include <cstdint>

#include "node-agent/scsi/task.h"

namespace vios::scsi {

// Result of a task management function (SAM-5 §7.11 service responses).
enum class TaskManagementResult : uint8_t {
  kFunctionComplete,
  kFunctionRejected,
  kIncorrectLun,
};

class Device {
 public:
  virtual ~Device() = default;

  // Submit executes task asynchronously; the device calls task->Complete() exactly once, on any
  // thread, possibly before Submit returns.
  virtual void Submit(Task* task) = 0;

  // Nexus lifecycle: called by the transport when a session logs in and when it ends (logout,
  // connection loss). A new nexus sees a POWER ON, RESET, OR BUS DEVICE RESET OCCURRED unit
  // attention on its first command, as SPC-4 §6.4 requires.
  virtual void NexusAdded(const Nexus& nexus) = 0;
  virtual void NexusRemoved(const Nexus& nexus) = 0;

  // TaskManagement applies LOGICAL UNIT RESET, TARGET WARM/COLD RESET, CLEAR TASK SET and the
  // like to the device state (reservations per SPC-2 rules, unit attentions for other nexuses).
  // Aborting the transport's own queued tasks is the transport's job; by the time this is called
  // the transport has waited for the affected in-flight tasks to complete.
  virtual TaskManagementResult TaskManagement(TaskManagementFunction function, const Nexus& nexus,
                                              uint64_t lun) = 0;
};

}  // namespace vios::scsi
