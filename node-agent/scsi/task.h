// The boundary between a SCSI transport (node-agent/iscsi) and the SCSI layer (node-agent/scsi).
//
// The transport builds a Task for each SCSI command it receives, gathers all Data-Out before
// submission, and hands the task to the LogicalUnit of the addressed LUN. The logical unit fills in
// status, sense and Data-In, then calls task->completion->TaskDone(task) exactly once, on any
// thread. The transport owns the Task and its buffers and keeps them alive until TaskDone.
//
// Nothing in this header allocates: a transport can keep a pool of Tasks and reuse them, so the
// data path does not touch the heap per I/O in steady state (DESIGN.md §4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace vios::scsi {

// SAM-5 status codes.
enum class Status : uint8_t {
  kGood = 0x00,
  kCheckCondition = 0x02,
  kConditionMet = 0x04,
  kBusy = 0x08,
  kReservationConflict = 0x18,
  kTaskSetFull = 0x28,
  kAcaActive = 0x30,
  kTaskAborted = 0x40,
};

// SPC-4 sense keys.
enum class SenseKey : uint8_t {
  kNoSense = 0x0,
  kRecoveredError = 0x1,
  kNotReady = 0x2,
  kMediumError = 0x3,
  kHardwareError = 0x4,
  kIllegalRequest = 0x5,
  kUnitAttention = 0x6,
  kDataProtect = 0x7,
  kBlankCheck = 0x8,
  kCopyAborted = 0xA,
  kAbortedCommand = 0xB,
  kMiscompare = 0xE,
};

// Data transfer direction as the initiator declared it (iSCSI R/W bits).
enum class DataDirection : uint8_t { kNone, kRead, kWrite, kBidirectional };

// SAM task attributes (iSCSI ATTR field values).
enum class TaskAttribute : uint8_t {
  kUntagged = 0,
  kSimple = 1,
  kOrdered = 2,
  kHeadOfQueue = 3,
  kAca = 4
};

// The I_T nexus a command arrived on. For iSCSI: the initiator port is
// "<initiator name>,i,0x<ISID>" and the target port "<target name>,t,0x<TPGT>" (RFC 7143 §4.4.1).
// Persistent reservations key registrations on this pair (SPC-4 §5.13).
struct Nexus {
  std::string initiator_port;
  std::string target_port;
  std::string initiator_name;     // iSCSI InitiatorName alone (for TransportID encoding).
  std::array<uint8_t, 6> isid{};  // Initiator session id.
  uint16_t relative_target_port = 1;
  bool operator==(const Nexus&) const = default;
};

class Task;

// TaskCompletion is implemented by the transport. TaskDone may be called on any thread.
class TaskCompletion {
 public:
  virtual ~TaskCompletion() = default;
  virtual void TaskDone(Task* task) = 0;
};

// Task is one SCSI command in flight.
class Task {
 public:
  static constexpr size_t kMaxCdbLength = 260;  // 16-byte CDB plus an extended-CDB AHS.
  static constexpr size_t kSenseLength = 18;    // Fixed-format sense data (SPC-4 §4.5.3).

  // --- Set by the transport before Submit. ---
  uint64_t lun = 0;  // Decoded LUN (SAM-5 §4.6, flat/peripheral addressing).
  std::array<uint8_t, kMaxCdbLength> cdb{};
  size_t cdb_length = 0;
  uint32_t tag = 0;  // Initiator task tag.
  TaskAttribute attribute = TaskAttribute::kSimple;
  DataDirection direction = DataDirection::kNone;
  uint32_t expected_transfer_length = 0;  // From the transport (iSCSI EDTL).
  // kWrite: all Data-Out bytes, size == bytes received (may be shorter than EDTL on error paths).
  std::span<const uint8_t> data_out;
  // kRead: the buffer Data-In goes to; its size is expected_transfer_length.
  std::span<uint8_t> data_in;
  const Nexus* nexus = nullptr;  // Valid until TaskDone.
  TaskCompletion* completion = nullptr;

  // --- Set by the logical unit before TaskDone. ---
  Status status = Status::kGood;
  uint32_t data_in_length = 0;  // Bytes of data_in filled (the rest is residual).
  std::array<uint8_t, kSenseLength> sense{};
  size_t sense_length = 0;  // 0 unless status == kCheckCondition.
  // The transfer length in bytes the CDB itself asks for (SAM-5 §5.4.3), when the logical unit
  // knows it (READ/WRITE and friends). The transport compares it with its expected transfer
  // length to report residual overflow/underflow (RFC 7143 §11.4.5.1); kUnknownLength leaves the
  // residual to data_in_length / data_out alone.
  static constexpr uint32_t kUnknownLength = 0xffffffff;
  uint32_t transfer_length = kUnknownLength;

  // Helpers for the logical unit.
  void SetGood() {
    status = Status::kGood;
    sense_length = 0;
  }
  // SetCheckCondition fills fixed-format sense data (response code 0x70, current error).
  void SetCheckCondition(SenseKey key, uint8_t asc, uint8_t ascq) {
    status = Status::kCheckCondition;
    sense.fill(0);
    sense[0] = 0x70;
    sense[2] = static_cast<uint8_t>(key);
    sense[7] = kSenseLength - 8;  // Additional sense length.
    sense[12] = asc;
    sense[13] = ascq;
    sense_length = kSenseLength;
  }
  // Resets the result fields so a pooled Task can be reused.
  void ResetResult() {
    status = Status::kGood;
    data_in_length = 0;
    sense_length = 0;
    transfer_length = kUnknownLength;
  }
  void Complete() { completion->TaskDone(this); }
};

// Task management functions a transport forwards (SAM-5 §7).
enum class TaskManagementFunction : uint8_t {
  kAbortTask = 1,
  kAbortTaskSet = 2,
  kClearAca = 3,
  kClearTaskSet = 4,
  kLogicalUnitReset = 5,
  kTargetWarmReset = 6,
  kTargetColdReset = 7,
};

}  // namespace vios::scsi
