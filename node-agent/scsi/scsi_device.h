// ScsiDevice: the Device behind one virtual port (device.h): a LUN map of LogicalUnits, REPORT
// LUNS, answers for absent LUNs, and per-nexus unit attentions (SPC-4 §5.14 / SAM-5 §5.14).
//
//   auto device = std::make_shared<ScsiDevice>();
//   device->AddLun(0, std::make_shared<LogicalUnit>(&volume, lu_config));
//   transport->Attach(device);   // calls NexusAdded / Submit / TaskManagement / NexusRemoved
//
// Unit attentions established: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00) for a new
// nexus, BUS DEVICE RESET FUNCTION OCCURRED (29/03) after LOGICAL UNIT / TARGET RESET for the other
// nexuses, CAPACITY DATA HAS CHANGED (2A/09) after the volume's size changed, REPORTED LUNS DATA
// HAS CHANGED (3F/0E) when LUNs come or go.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "node-agent/scsi/device.h"
#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {

class ScsiDevice final : public Device {
 public:
  ScsiDevice() = default;
  ~ScsiDevice() override = default;
  ScsiDevice(const ScsiDevice&) = delete;
  ScsiDevice& operator=(const ScsiDevice&) = delete;

  // AddLun maps lun (< 16384, flat addressing) to lu, replacing any previous one.
  void AddLun(uint64_t lun, std::shared_ptr<LogicalUnit> lu);
  // RemoveLun unmaps lun. The transport must have no task in flight for it.
  void RemoveLun(uint64_t lun);
  std::shared_ptr<LogicalUnit> Lun(uint64_t lun) const;
  // NotifyCapacityChanged establishes CAPACITY DATA HAS CHANGED now; the device also notices a
  // changed backend size by itself on the next command.
  void NotifyCapacityChanged(uint64_t lun);
  // EstablishUnitAttention queues a unit attention for one I_T nexus and LUN, for reservation
  // policies: RESERVATIONS PREEMPTED (2A/03), RESERVATIONS RELEASED (2A/04), REGISTRATIONS
  // PREEMPTED (2A/05), or any of the conditions above. False for other codes or unknown nexuses.
  bool EstablishUnitAttention(const std::string& initiator_port, const std::string& target_port,
                              uint64_t lun, Asc asc);

  // Device.
  void Submit(Task* task) override;
  void NexusAdded(const Nexus& nexus) override;
  void NexusRemoved(const Nexus& nexus) override;
  TaskManagementResult TaskManagement(TaskManagementFunction function, const Nexus& nexus,
                                      uint64_t lun) override;

 private:
  enum UnitAttention : uint32_t {
    kUaPowerOn = 1,
    kUaReset = 2,
    kUaReservationsReleased = 4,
    kUaCapacityChanged = 8,
    kUaReportedLunsChanged = 16,
    kUaReservationsPreempted = 32,
    kUaRegistrationsPreempted = 64,
  };
  struct LunEntry {
    std::shared_ptr<LogicalUnit> lu;
    std::shared_ptr<std::atomic<uint64_t>> last_block_count;
  };
  struct NexusState {
    std::string initiator_port;
    std::string target_port;
    std::map<uint64_t, uint32_t> pending;  // LUN -> UnitAttention bits.
  };

  void ReportLuns(Task* task);
  static void AnswerAbsentLun(Task* task);
  // Establish sets bits for lun (or every LUN when all_luns) on every nexus except `except`.
  void Establish(uint32_t bits, uint64_t lun, bool all_luns, const Nexus* except);
  NexusState* FindNexusLocked(const Nexus& nexus);
  // TakeUnitAttention returns true and fills the task when a unit attention must be reported.
  bool TakeUnitAttention(Task* task, uint64_t lun);

  mutable std::shared_mutex luns_mutex_;
  std::map<uint64_t, LunEntry> luns_;

  std::mutex ua_mutex_;
  std::vector<NexusState> nexuses_;
  std::atomic<uint64_t> ua_pending_{0};  // Nexus/LUN pairs with bits set; skips the lock when 0.
};

}  // namespace vios::scsi
