// ScsiDevice: LUN routing, REPORT LUNS (SPC-4 §6.33), absent LUNs (SPC-4 §6.6.2, §6.39) and
// unit attention conditions per I_T nexus (SAM-5 §5.14, SPC-4 §5.14).
#include "node-agent/scsi/scsi_device.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/log/log.h"

namespace vios::scsi {
namespace {

constexpr uint8_t kInquiry = 0x12;
constexpr uint8_t kRequestSense = 0x03;
constexpr uint8_t kReportLuns = 0xA0;

// EncodeLun writes a LUN in peripheral (< 256) or flat (< 16384) addressing (SAM-5 §4.7).
void EncodeLun(uint64_t lun, uint8_t* out) {
  std::memset(out, 0, 8);
  if (lun < 256) {
    out[1] = static_cast<uint8_t>(lun);
  } else {
    out[0] = static_cast<uint8_t>(0x40 | ((lun >> 8) & 0x3F));
    out[1] = static_cast<uint8_t>(lun);
  }
}

Asc AscFor(uint32_t bit) {
  switch (bit) {
    case 1:
      return kAscPowerOnReset;
    case 2:
      return kAscBusDeviceResetOccurred;
    case 4:
      return kAscReservationsReleased;
    case 8:
      return kAscCapacityDataHasChanged;
    case 16:
      return kAscReportedLunsDataHasChanged;
    case 32:
      return Asc{0x2A, 0x03};  // RESERVATIONS PREEMPTED
    default:
      return Asc{0x2A, 0x05};  // REGISTRATIONS PREEMPTED
  }
}

void RespondBytes(Task* task, const uint8_t* data, size_t n, uint32_t allocation_length) {
  n = std::min<size_t>({n, allocation_length, task->data_in.size()});
  if (n != 0) {
    std::memcpy(task->data_in.data(), data, n);
  }
  task->data_in_length = static_cast<uint32_t>(n);
  task->SetGood();
}

}  // namespace

void ScsiDevice::AddLun(uint64_t lun, std::shared_ptr<LogicalUnit> lu) {
  const uint64_t blocks = lu->BlockCount();
  {
    std::unique_lock<std::shared_mutex> lock(luns_mutex_);
    luns_[lun] = LunEntry{std::move(lu), std::make_shared<std::atomic<uint64_t>>(blocks)};
  }
  Establish(kUaReportedLunsChanged, 0, true, nullptr);
  // Existing nexuses see the new LU as powered on.
  Establish(kUaPowerOn, lun, false, nullptr);
}

void ScsiDevice::RemoveLun(uint64_t lun) {
  {
    std::unique_lock<std::shared_mutex> lock(luns_mutex_);
    luns_.erase(lun);
  }
  {
    std::lock_guard<std::mutex> lock(ua_mutex_);
    for (NexusState& n : nexuses_) {
      auto it = n.pending.find(lun);
      if (it != n.pending.end()) {
        if (it->second != 0) {
          ua_pending_.fetch_sub(1);
        }
        n.pending.erase(it);
      }
    }
  }
  Establish(kUaReportedLunsChanged, 0, true, nullptr);
}

std::shared_ptr<LogicalUnit> ScsiDevice::Lun(uint64_t lun) const {
  std::shared_lock<std::shared_mutex> lock(luns_mutex_);
  auto it = luns_.find(lun);
  return it == luns_.end() ? nullptr : it->second.lu;
}

void ScsiDevice::NotifyCapacityChanged(uint64_t lun) {
  Establish(kUaCapacityChanged, lun, false, nullptr);
}

bool ScsiDevice::EstablishUnitAttention(const std::string& initiator_port,
                                        const std::string& target_port, uint64_t lun, Asc asc) {
  uint32_t bit = 0;
  for (uint32_t b = 1; b <= kUaRegistrationsPreempted; b <<= 1) {
    const Asc known = AscFor(b);
    if (known.asc == asc.asc && known.ascq == asc.ascq) {
      bit = b;
    }
  }
  if (bit == 0) {
    return false;
  }
  std::lock_guard<std::mutex> lock(ua_mutex_);
  for (NexusState& n : nexuses_) {
    if (n.initiator_port == initiator_port && n.target_port == target_port) {
      uint32_t& bits = n.pending[lun];
      if (bits == 0) {
        ua_pending_.fetch_add(1);
      }
      bits |= bit;
      return true;
    }
  }
  return false;
}

void ScsiDevice::Submit(Task* task) {
  task->ResetResult();
  LogicalUnit* lu = nullptr;
  std::atomic<uint64_t>* last_blocks = nullptr;
  {
    std::shared_lock<std::shared_mutex> lock(luns_mutex_);
    auto it = luns_.find(task->lun);
    if (it != luns_.end()) {
      lu = it->second.lu.get();
      last_blocks = it->second.last_block_count.get();
    }
  }
  const uint8_t opcode = task->cdb_length == 0 ? 0xFF : task->cdb[0];
  if (opcode == kReportLuns) {
    ReportLuns(task);
    task->Complete();
    return;
  }
  if (lu == nullptr) {
    AnswerAbsentLun(task);
    task->Complete();
    return;
  }
  // Notice a resized volume (SBC-3 §4.6: CAPACITY DATA HAS CHANGED for every nexus).
  const uint64_t blocks = lu->BlockCount();
  uint64_t previous = last_blocks->load(std::memory_order_relaxed);
  if (previous != blocks && last_blocks->compare_exchange_strong(previous, blocks)) {
    VIOS_LOG(kInfo, "logical unit capacity changed")
        .Field("lun", task->lun)
        .Field("blocks", blocks);
    Establish(kUaCapacityChanged, task->lun, false, nullptr);
  }
  if (opcode != kInquiry && ua_pending_.load(std::memory_order_acquire) != 0 &&
      TakeUnitAttention(task, task->lun)) {
    task->Complete();
    return;
  }
  lu->Execute(task);
}

void ScsiDevice::AnswerAbsentLun(Task* task) {
  const uint8_t* c = task->cdb.data();
  if (task->cdb_length != 0 && c[0] == kInquiry) {
    // Peripheral qualifier 3 / device type 0x1F: no logical unit here (SPC-4 §6.6.2).
    std::array<uint8_t, 36> data{};
    data[0] = 0x7F;
    size_t n = 36;
    if ((c[1] & 0x01) != 0) {
      data[1] = c[2];
      n = 4;
    } else {
      data[2] = 0x06;
      data[3] = 0x12;
      data[4] = 31;
      std::memcpy(&data[8], "VIOS    ", 8);
    }
    RespondBytes(task, data.data(), n, wire::Load16(c + 3));
    return;
  }
  if (task->cdb_length != 0 && c[0] == kRequestSense) {
    // SPC-4 §6.39: sense data LOGICAL UNIT NOT SUPPORTED, returned as data with GOOD status.
    std::array<uint8_t, 18> data{};
    data[0] = 0x70;
    data[2] = static_cast<uint8_t>(SenseKey::kIllegalRequest);
    data[7] = 10;
    data[12] = kAscLogicalUnitNotSupported.asc;
    data[13] = kAscLogicalUnitNotSupported.ascq;
    RespondBytes(task, data.data(), data.size(), c[4]);
    return;
  }
  SetSense(task, SenseKey::kIllegalRequest, kAscLogicalUnitNotSupported);
}

void ScsiDevice::ReportLuns(Task* task) {
  const uint8_t* c = task->cdb.data();
  const uint8_t select = c[2];
  if (select > 0x02) {
    SetInvalidFieldInCdb(task, 2);
    return;
  }
  std::vector<uint8_t> data(8);
  if (select != 0x01) {  // 01h: well-known LUNs only; we have none.
    std::shared_lock<std::shared_mutex> lock(luns_mutex_);
    data.resize(8 + 8 * luns_.size());
    size_t i = 0;
    for (const auto& [lun, entry] : luns_) {
      EncodeLun(lun, data.data() + 8 + 8 * i++);
    }
  }
  wire::Store32(data.data(), static_cast<uint32_t>(data.size() - 8));
  // REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED for this nexus (SPC-4 §6.33).
  if (task->nexus != nullptr && ua_pending_.load() != 0) {
    std::lock_guard<std::mutex> lock(ua_mutex_);
    if (NexusState* n = FindNexusLocked(*task->nexus)) {
      for (auto& [lun, bits] : n->pending) {
        if ((bits & kUaReportedLunsChanged) != 0) {
          bits &= ~static_cast<uint32_t>(kUaReportedLunsChanged);
          if (bits == 0) {
            ua_pending_.fetch_sub(1);
          }
        }
      }
    }
  }
  RespondBytes(task, data.data(), data.size(), wire::Load32(c + 6));
}

ScsiDevice::NexusState* ScsiDevice::FindNexusLocked(const Nexus& nexus) {
  for (NexusState& n : nexuses_) {
    if (n.initiator_port == nexus.initiator_port && n.target_port == nexus.target_port) {
      return &n;
    }
  }
  return nullptr;
}

void ScsiDevice::NexusAdded(const Nexus& nexus) {
  std::vector<uint64_t> luns;
  {
    std::shared_lock<std::shared_mutex> lock(luns_mutex_);
    for (const auto& [lun, entry] : luns_) {
      luns.push_back(lun);
    }
  }
  std::lock_guard<std::mutex> lock(ua_mutex_);
  NexusState* n = FindNexusLocked(nexus);
  if (n == nullptr) {
    nexuses_.push_back(NexusState{nexus.initiator_port, nexus.target_port, {}});
    n = &nexuses_.back();
  }
  for (uint64_t lun : luns) {
    uint32_t& bits = n->pending[lun];
    if (bits == 0) {
      ua_pending_.fetch_add(1);
    }
    bits |= kUaPowerOn;
  }
}

void ScsiDevice::NexusRemoved(const Nexus& nexus) {
  {
    std::lock_guard<std::mutex> lock(ua_mutex_);
    for (auto it = nexuses_.begin(); it != nexuses_.end(); ++it) {
      if (it->initiator_port == nexus.initiator_port && it->target_port == nexus.target_port) {
        for (const auto& [lun, bits] : it->pending) {
          if (bits != 0) {
            ua_pending_.fetch_sub(1);
          }
        }
        nexuses_.erase(it);
        break;
      }
    }
  }
  std::shared_lock<std::shared_mutex> lock(luns_mutex_);
  for (const auto& [lun, entry] : luns_) {
    if (ReservationPolicy* policy = entry.lu->reservation_policy()) {
      policy->NexusRemoved(nexus);
    }
  }
}

void ScsiDevice::Establish(uint32_t bits, uint64_t lun, bool all_luns, const Nexus* except) {
  std::vector<uint64_t> targets;
  if (all_luns) {
    std::shared_lock<std::shared_mutex> lock(luns_mutex_);
    for (const auto& [l, entry] : luns_) {
      targets.push_back(l);
    }
  } else {
    targets.push_back(lun);
  }
  std::lock_guard<std::mutex> lock(ua_mutex_);
  for (NexusState& n : nexuses_) {
    if (except != nullptr && n.initiator_port == except->initiator_port &&
        n.target_port == except->target_port) {
      continue;
    }
    for (uint64_t l : targets) {
      uint32_t& b = n.pending[l];
      if (b == 0) {
        ua_pending_.fetch_add(1);
      }
      b |= bits;
    }
  }
}

bool ScsiDevice::TakeUnitAttention(Task* task, uint64_t lun) {
  if (task->nexus == nullptr) {
    return false;
  }
  std::lock_guard<std::mutex> lock(ua_mutex_);
  NexusState* n = FindNexusLocked(*task->nexus);
  if (n == nullptr) {
    return false;
  }
  auto it = n->pending.find(lun);
  if (it == n->pending.end() || it->second == 0) {
    return false;
  }
  const uint32_t bit = it->second & (~it->second + 1);  // Lowest bit = highest priority.
  // A reset reported supersedes the older power-on condition (SAM-5 §5.14: one 29h at a time).
  it->second &= ~bit;
  if (bit == kUaPowerOn || bit == kUaReset) {
    it->second &= ~static_cast<uint32_t>(kUaPowerOn | kUaReset);
  }
  if (it->second == 0) {
    ua_pending_.fetch_sub(1);
  }
  const Asc asc = AscFor(bit);
  if (task->cdb[0] == kRequestSense) {
    // REQUEST SENSE reports the unit attention as its data and clears it (SPC-4 §6.39).
    std::array<uint8_t, 18> data{};
    data[0] = 0x70;
    data[2] = static_cast<uint8_t>(SenseKey::kUnitAttention);
    data[7] = 10;
    data[12] = asc.asc;
    data[13] = asc.ascq;
    RespondBytes(task, data.data(), data.size(), task->cdb[4]);
    return true;
  }
  SetSense(task, SenseKey::kUnitAttention, asc);
  return true;
}

TaskManagementResult ScsiDevice::TaskManagement(TaskManagementFunction function, const Nexus& nexus,
                                                uint64_t lun) {
  switch (function) {
    case TaskManagementFunction::kAbortTask:
    case TaskManagementFunction::kAbortTaskSet:
    case TaskManagementFunction::kClearTaskSet:
      return TaskManagementResult::kFunctionComplete;
    case TaskManagementFunction::kClearAca:
      return TaskManagementResult::kFunctionRejected;  // NACA is never accepted.
    case TaskManagementFunction::kLogicalUnitReset: {
      std::shared_ptr<LogicalUnit> lu = Lun(lun);
      if (lu == nullptr) {
        return TaskManagementResult::kIncorrectLun;
      }
      if (ReservationPolicy* policy = lu->reservation_policy()) {
        policy->Reset(function, nexus);
      }
      Establish(kUaReset, lun, false, &nexus);
      return TaskManagementResult::kFunctionComplete;
    }
    case TaskManagementFunction::kTargetWarmReset:
    case TaskManagementFunction::kTargetColdReset: {
      {
        std::shared_lock<std::shared_mutex> lock(luns_mutex_);
        for (const auto& [l, entry] : luns_) {
          if (ReservationPolicy* policy = entry.lu->reservation_policy()) {
            policy->Reset(function, nexus);
          }
        }
      }
      Establish(function == TaskManagementFunction::kTargetColdReset ? kUaPowerOn : kUaReset, 0,
                true, &nexus);
      return TaskManagementResult::kFunctionComplete;
    }
  }
  return TaskManagementResult::kFunctionRejected;
}

}  // namespace vios::scsi
