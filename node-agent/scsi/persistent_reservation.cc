// PersistentReservations: SPC-4 §5.13 in one process.
#include "node-agent/scsi/persistent_reservation.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "node-agent/scsi/sense.h"

namespace vios::scsi {
namespace {

constexpr uint8_t kPrIn = 0x5E;
constexpr uint8_t kPrOut = 0x5F;

// Reservation types (SPC-4 §6.15.2 table).
constexpr uint8_t kWriteExclusive = 1;
constexpr uint8_t kExclusiveAccess = 3;
constexpr uint8_t kWriteExclusiveRegistrantsOnly = 5;
constexpr uint8_t kExclusiveAccessRegistrantsOnly = 6;
constexpr uint8_t kWriteExclusiveAllRegistrants = 7;
constexpr uint8_t kExclusiveAccessAllRegistrants = 8;

bool ValidType(uint8_t type) {
  return type == 1 || type == 3 || type == 5 || type == 6 || type == 7 || type == 8;
}

bool SameNexus(const Nexus& a, const Nexus& b) {
  return a.initiator_port == b.initiator_port && a.target_port == b.target_port;
}

enum class Access { kAlways, kRead, kWrite };

// Classify a command for the conflict table (SPC-4 §5.13.1 / SBC-3 table 13).
Access Classify(uint8_t opcode) {
  switch (opcode) {
    case 0x00:  // TEST UNIT READY
    case 0x03:  // REQUEST SENSE
    case 0x12:  // INQUIRY
    case 0x25:  // READ CAPACITY(10)
    case 0x5E:  // PERSISTENT RESERVE IN
    case 0x5F:  // PERSISTENT RESERVE OUT
    case 0x9E:  // SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS
    case 0xA0:  // REPORT LUNS
    case 0xA3:  // MAINTENANCE IN
      return Access::kAlways;
    case 0x08:
    case 0x28:
    case 0xA8:
    case 0x88:  // READ
    case 0x2F:
    case 0x8F:  // VERIFY
    case 0x1A:
    case 0x5A:  // MODE SENSE
      return Access::kRead;
    default:
      return Access::kWrite;
  }
}

}  // namespace

bool PersistentReservations::Handles(uint8_t opcode) const {
  return opcode == kPrIn || opcode == kPrOut || spc2_.Handles(opcode);
}

uint32_t PersistentReservations::generation() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

size_t PersistentReservations::registrations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return registrations_.size();
}

PersistentReservations::Registration* PersistentReservations::FindLocked(const Nexus& nexus) {
  for (Registration& r : registrations_) {
    if (SameNexus(r.nexus, nexus)) {
      return &r;
    }
  }
  return nullptr;
}

bool PersistentReservations::AllRegistrantsType() const {
  return reservation_.has_value() && (reservation_->type == kWriteExclusiveAllRegistrants ||
                                      reservation_->type == kExclusiveAccessAllRegistrants);
}

// IsHolderLocked: the holder, or any registrant for the all-registrants types (SPC-4 §5.13.10).
bool PersistentReservations::IsHolderLocked(const Nexus& nexus) {
  if (!reservation_.has_value()) {
    return false;
  }
  if (AllRegistrantsType()) {
    return FindLocked(nexus) != nullptr;
  }
  return SameNexus(reservation_->holder, nexus);
}

void PersistentReservations::RemoveLocked(const Nexus& nexus) {
  const bool holder =
      reservation_.has_value() && !AllRegistrantsType() && SameNexus(reservation_->holder, nexus);
  registrations_.erase(
      std::remove_if(registrations_.begin(), registrations_.end(),
                     [&](const Registration& r) { return SameNexus(r.nexus, nexus); }),
      registrations_.end());
  if (holder || (AllRegistrantsType() && registrations_.empty())) {
    reservation_.reset();
  }
}

bool PersistentReservations::Allows(const Nexus& nexus, const uint8_t* cdb, size_t cdb_length) {
  if (cdb_length == 0) {
    return true;
  }
  if (!spc2_.Allows(nexus, cdb, cdb_length)) {
    return false;
  }
  const Access access = Classify(cdb[0]);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!reservation_.has_value() || access == Access::kAlways) {
    return true;
  }
  const uint8_t type = reservation_->type;
  const bool registered = FindLocked(nexus) != nullptr;
  bool privileged = SameNexus(reservation_->holder, nexus);
  if (type == kWriteExclusiveRegistrantsOnly || type == kExclusiveAccessRegistrantsOnly ||
      type == kWriteExclusiveAllRegistrants || type == kExclusiveAccessAllRegistrants) {
    privileged = privileged || registered;
  }
  if (privileged) {
    return true;
  }
  const bool write_exclusive_family = type == kWriteExclusive ||
                                      type == kWriteExclusiveRegistrantsOnly ||
                                      type == kWriteExclusiveAllRegistrants;
  return write_exclusive_family && access == Access::kRead;
}

void PersistentReservations::Execute(Task* task) {
  const uint8_t opcode = task->cdb[0];
  if (opcode != kPrIn && opcode != kPrOut) {
    // SPC-2 RESERVE conflicts with existing persistent reservations (SPC-4 §5.13.3).
    if ((opcode == 0x16 || opcode == 0x56) && task->nexus != nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (reservation_.has_value() && !IsHolderLocked(*task->nexus)) {
        task->status = Status::kReservationConflict;
        task->Complete();
        return;
      }
    }
    spc2_.Execute(task);
    return;
  }
  if (task->nexus == nullptr) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  if (opcode == kPrIn) {
    In(task);
  } else {
    Out(task);
  }
  task->Complete();
}

void PersistentReservations::In(Task* task) {
  const uint8_t* c = task->cdb.data();
  const uint8_t sa = c[1] & 0x1F;
  const uint32_t allocation_length = wire::Load16(c + 7);
  std::vector<uint8_t> data;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    switch (sa) {
      case 0x00: {  // READ KEYS
        data.resize(8 + 8 * registrations_.size());
        wire::Store32(data.data(), generation_);
        wire::Store32(data.data() + 4, static_cast<uint32_t>(8 * registrations_.size()));
        for (size_t i = 0; i < registrations_.size(); ++i) {
          wire::Store64(data.data() + 8 + 8 * i, registrations_[i].key);
        }
        break;
      }
      case 0x01: {  // READ RESERVATION
        data.resize(reservation_.has_value() ? 24 : 8);
        wire::Store32(data.data(), generation_);
        if (reservation_.has_value()) {
          wire::Store32(data.data() + 4, 16);
          // All-registrants reservations report key 0 (SPC-4 §6.15.3.3).
          const Registration* holder = FindLocked(reservation_->holder);
          const uint64_t key = AllRegistrantsType() || holder == nullptr ? 0 : holder->key;
          wire::Store64(data.data() + 8, key);
          data[21] = reservation_->type;  // Scope 0 (LU) in the high nibble.
        }
        break;
      }
      case 0x02: {  // REPORT CAPABILITIES
        data.resize(8);
        wire::Store16(data.data(), 8);
        data[2] = 0x10;  // CRH: RESERVE/RELEASE(6/10) handled as SPC-4 §5.13.3 says.
        data[3] = 0x80;  // TMV: the type mask is valid.
        data[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
        data[5] = 0x01;
        break;
      }
      case 0x03: {  // READ FULL STATUS
        data.resize(8);
        wire::Store32(data.data(), generation_);
        for (const Registration& r : registrations_) {
          // TransportID format 01b: iSCSI name plus ",i,0x" ISID, null terminated, padded.
          const std::string& id = r.nexus.initiator_port;
          const size_t id_length = (id.size() + 1 + 3) & ~size_t{3};
          const size_t at = data.size();
          data.resize(at + 24 + 4 + id_length);
          uint8_t* d = data.data() + at;
          wire::Store64(d, r.key);
          const bool holder = IsHolderLocked(r.nexus);
          d[12] = holder ? 0x01 : 0x00;
          d[13] = holder ? reservation_->type : 0;
          wire::Store16(d + 18, r.nexus.relative_target_port);
          wire::Store32(d + 20, static_cast<uint32_t>(4 + id_length));
          d[24] = 0x45;  // Format 01b, protocol iSCSI (5).
          wire::Store16(d + 26, static_cast<uint16_t>(id_length));
          std::memcpy(d + 28, id.data(), id.size());
        }
        wire::Store32(data.data() + 4, static_cast<uint32_t>(data.size() - 8));
        break;
      }
      default:
        SetInvalidFieldInCdb(task, 1, 4);
        return;
    }
  }
  const size_t n = std::min<size_t>({data.size(), allocation_length, task->data_in.size()});
  std::memcpy(task->data_in.data(), data.data(), n);
  task->data_in_length = static_cast<uint32_t>(n);
  task->SetGood();
}

void PersistentReservations::Out(Task* task) {
  const uint8_t* c = task->cdb.data();
  const uint8_t sa = c[1] & 0x1F;
  const uint8_t scope = c[2] >> 4;
  const uint8_t type = c[2] & 0x0F;
  const uint32_t list_length = wire::Load32(c + 5);
  if (sa == 0x07) {  // REGISTER AND MOVE: not supported.
    SetInvalidFieldInCdb(task, 1, 4);
    return;
  }
  if (list_length != 24 || task->data_out.size() < 24) {
    SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
    return;
  }
  const uint8_t* p = task->data_out.data();
  const uint64_t key = wire::Load64(p);
  const uint64_t sa_key = wire::Load64(p + 8);
  if ((p[20] & 0x08) != 0 || (p[20] & 0x04) != 0 || (p[20] & 0x01) != 0) {
    // SPEC_I_PT, ALL_TG_PT, APTPL: not supported (REPORT CAPABILITIES says so).
    SetInvalidFieldInParameterList(task, 20);
    return;
  }
  const Nexus& nexus = *task->nexus;
  std::lock_guard<std::mutex> lock(mutex_);
  Registration* mine = FindLocked(nexus);
  const auto conflict = [task] { task->status = Status::kReservationConflict; };

  if (sa == 0x00 || sa == 0x06) {  // REGISTER / REGISTER AND IGNORE EXISTING KEY
    if (sa == 0x00 && ((mine == nullptr && key != 0) || (mine != nullptr && key != mine->key))) {
      conflict();
      return;
    }
    if (sa_key == 0) {
      if (mine != nullptr) {
        RemoveLocked(nexus);
        ++generation_;
      }
    } else if (mine != nullptr) {
      mine->key = sa_key;
      ++generation_;
    } else {
      registrations_.push_back(Registration{nexus, sa_key});
      ++generation_;
    }
    task->SetGood();
    return;
  }
  // Every other service action needs a registered nexus presenting its key.
  if (mine == nullptr || mine->key != key) {
    conflict();
    return;
  }
  const bool needs_type = sa == 0x01 || sa == 0x02 || sa == 0x04 || sa == 0x05;
  if (needs_type && (scope != 0 || !ValidType(type))) {
    SetInvalidFieldInCdb(task, 2);
    return;
  }
  switch (sa) {
    case 0x01:  // RESERVE
      if (reservation_.has_value()) {
        if (!IsHolderLocked(nexus)) {
          conflict();
          return;
        }
        if (reservation_->type != type) {
          conflict();
          return;
        }
      } else {
        reservation_ = Reservation{nexus, type};
      }
      break;
    case 0x02:  // RELEASE
      if (reservation_.has_value() && IsHolderLocked(nexus)) {
        if (reservation_->type != type) {
          SetSense(task, SenseKey::kIllegalRequest, Asc{0x26, 0x04});  // INVALID RELEASE OF PR
          return;
        }
        reservation_.reset();
      }
      break;
    case 0x03:  // CLEAR
      registrations_.clear();
      reservation_.reset();
      ++generation_;
      break;
    case 0x04:    // PREEMPT
    case 0x05: {  // PREEMPT AND ABORT
      const auto remove_key = [&](uint64_t victim, bool keep_self) {
        size_t removed = 0;
        for (size_t i = registrations_.size(); i-- > 0;) {
          if (registrations_[i].key == victim &&
              !(keep_self && SameNexus(registrations_[i].nexus, nexus))) {
            registrations_.erase(registrations_.begin() + static_cast<ptrdiff_t>(i));
            ++removed;
          }
        }
        return removed;
      };
      if (!reservation_.has_value()) {
        if (sa_key == 0) {
          SetInvalidFieldInParameterList(task, 8);
          return;
        }
        if (remove_key(sa_key, false) == 0) {
          conflict();
          return;
        }
      } else if (AllRegistrantsType()) {
        if (sa_key == 0) {
          // Everyone else goes; this nexus holds a new reservation.
          registrations_.erase(
              std::remove_if(registrations_.begin(), registrations_.end(),
                             [&](const Registration& r) { return !SameNexus(r.nexus, nexus); }),
              registrations_.end());
          reservation_ = Reservation{nexus, type};
        } else if (remove_key(sa_key, false) == 0) {
          conflict();
          return;
        }
      } else {
        const Registration* holder = FindLocked(reservation_->holder);
        if (holder != nullptr && holder->key == sa_key) {
          remove_key(sa_key, true);
          reservation_ = Reservation{nexus, type};
        } else {
          if (sa_key == 0) {
            SetInvalidFieldInParameterList(task, 8);
            return;
          }
          if (remove_key(sa_key, false) == 0) {
            conflict();
            return;
          }
        }
      }
      ++generation_;
      break;
    }
    default:
      SetInvalidFieldInCdb(task, 1, 4);
      return;
  }
  task->SetGood();
}

void PersistentReservations::NexusRemoved(const Nexus& nexus) {
  // Registrations persist across I_T nexus loss (SPC-4 §5.13.6); SPC-2 reservations do not.
  spc2_.NexusRemoved(nexus);
}

void PersistentReservations::Reset(TaskManagementFunction function, const Nexus& nexus) {
  // Persistent reservations survive resets (SPC-4 §5.13.1); SPC-2 ones are released.
  spc2_.Reset(function, nexus);
}

}  // namespace vios::scsi
