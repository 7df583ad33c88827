// Spc2Reservations: SPC-2 RESERVE/RELEASE held by one I_T nexus (SPC-2 §5.5.1).
#include "node-agent/scsi/spc2_reservation.h"

#include "node-agent/scsi/sense.h"

namespace vios::scsi {
namespace {

constexpr uint8_t kReserve6 = 0x16;
constexpr uint8_t kRelease6 = 0x17;
constexpr uint8_t kReserve10 = 0x56;
constexpr uint8_t kRelease10 = 0x57;

}  // namespace

bool Spc2Reservations::Handles(uint8_t opcode) const {
  return opcode == kReserve6 || opcode == kRelease6 || opcode == kReserve10 || opcode == kRelease10;
}

bool Spc2Reservations::Reserved() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return holder_.has_value();
}

// SPC-2 §5.5.1 / SBC-2 table 3: under another nexus's reservation only INQUIRY, REQUEST SENSE,
// REPORT LUNS, REPORT SUPPORTED OPCODES/TMFs and RELEASE (which then does nothing) are allowed.
bool Spc2Reservations::Allows(const Nexus& nexus, const uint8_t* cdb, size_t cdb_length) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!holder_.has_value() || *holder_ == nexus || cdb_length == 0) {
    return true;
  }
  switch (cdb[0]) {
    case 0x12:  // INQUIRY
    case 0x03:  // REQUEST SENSE
    case 0xA0:  // REPORT LUNS
    case 0xA3:  // MAINTENANCE IN (report opcodes / TMFs)
      return true;
    default:
      return false;
  }
}

void Spc2Reservations::Execute(Task* task) {
  const uint8_t opcode = task->cdb[0];
  if (task->nexus == nullptr) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (opcode == kReserve6 || opcode == kReserve10) {
      if (holder_.has_value() && !(*holder_ == *task->nexus)) {
        task->status = Status::kReservationConflict;
      } else {
        holder_ = *task->nexus;
        task->SetGood();
      }
    } else {
      // RELEASE by a non-holder is GOOD and changes nothing (SPC-2 §7.16).
      if (holder_.has_value() && *holder_ == *task->nexus) {
        holder_.reset();
      }
      task->SetGood();
    }
  }
  task->Complete();
}

void Spc2Reservations::NexusRemoved(const Nexus& nexus) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (holder_.has_value() && *holder_ == nexus) {
    holder_.reset();
  }
}

void Spc2Reservations::Reset(TaskManagementFunction function, const Nexus& nexus) {
  (void)function;
  (void)nexus;
  std::lock_guard<std::mutex> lock(mutex_);
  holder_.reset();  // LOGICAL UNIT RESET and target resets release SPC-2 reservations.
}

}  // namespace vios::scsi
