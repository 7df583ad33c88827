// LogicalUnit: a SBC-3 direct-access block device (one per volume) over a backend::BlockDevice.
//
// The Device routes tasks by LUN, handles unit attentions, then calls Execute. Execute decodes the
// CDB through the single opcode table (opcode_table.cc: dispatch, CDB length, usage mask for
// reserved-bit checks and REPORT SUPPORTED OPERATION CODES), consults the ReservationPolicy, and
// runs the handler. Handlers live in files by family: inquiry.cc, read_capacity.cc, read_write.cc,
// prefetch.cc (PRE-FETCH, READ DEFECT DATA),
// write_same.cc, unmap.cc, compare_and_write.cc, mode_pages.cc, report_opcodes.cc.
//
// Data moves between task buffers and the backend without copies; per-command state lives in a
// pooled CommandContext, so READ/WRITE do not allocate in steady state.
//
//   LogicalUnitConfig config;
//   config.volume_id = "pvc-1234";
//   LogicalUnit lu(&volume, config);
//   lu.Execute(task);   // task->Complete() later, on any thread
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/backend/io_counters.h"
#include "node-agent/scsi/reservation.h"
#include "node-agent/scsi/sense.h"
#include "node-agent/scsi/task.h"

namespace vios::scsi {

struct LogicalUnitConfig {
  std::string volume_id;                   // Names the LU: NAA designator and default serial.
  std::string serial;                      // VPD 0x80; empty: derived from volume_id.
  std::string vendor = "VIOS";             // T10 vendor id (8 chars max).
  std::string product = "VIRTUAL-DISK";    // 16 chars max.
  std::string revision = "0001";           // 4 chars max.
  bool read_only = false;                  // WRITE PROTECTED for every medium-modifying command.
  bool write_cache = true;                 // Caching page WCE; FUA and SYNCHRONIZE CACHE flush.
  uint32_t max_transfer_bytes = 8u << 20;  // VPD B0 MAXIMUM TRANSFER LENGTH.
  uint32_t optimal_transfer_bytes = 1u << 20;  // VPD B0 OPTIMAL TRANSFER LENGTH.
  uint32_t max_unmap_blocks = 1u << 20;        // VPD B0 MAXIMUM UNMAP LBA COUNT.
  uint32_t max_unmap_descriptors = 256;        // VPD B0 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
  // VPD B0 MAXIMUM WRITE SAME LENGTH: 16 bits, so WRITE SAME(16) never asks for more than the
  // WRITE SAME(10) form can express (initiators probe the larger lengths with plain WRITEs).
  uint64_t max_write_same_blocks = 0xFFFF;
  uint8_t max_compare_and_write_blocks = 128;  // VPD B0 MAXIMUM COMPARE AND WRITE LENGTH.
  uint32_t physical_block_bytes = 4096;        // READ CAPACITY(16) exponent; 0: same as logical.
  size_t preallocated_contexts = 64;           // CommandContexts created up front.
};

class LogicalUnit;

// CommandContext is the per-command state of an asynchronous command. Pooled per LU.
struct CommandContext final : backend::IoCompletion {
  using Step = void (LogicalUnit::*)(CommandContext*);

  LogicalUnit* lu = nullptr;
  Task* task = nullptr;
  backend::IoRequest io;
  Step on_io_done = nullptr;  // Called from IoDone.
  Step on_locked = nullptr;   // Called once the LBA range lock is held.
  uint64_t lba = 0;           // Range of the command, in blocks.
  uint64_t blocks = 0;
  uint64_t cursor = 0;  // Progress of multi-step commands, in blocks.
  uint32_t stage = 0;
  bool fua = false;
  bool unmap = false;
  bool exclusive = false;  // Holds the range exclusively (COMPARE AND WRITE).
  bool locked = false;
  backend::IoCounters::Kind kind = backend::IoCounters::Kind::kOther;
  uint64_t start_ns = 0;
  std::vector<uint8_t> scratch;  // Grows once to the largest size needed, then reused.
  // Range lock links (LogicalUnit::range_mutex_).
  CommandContext* prev = nullptr;
  CommandContext* next = nullptr;
  CommandContext* ready_next = nullptr;

  void IoDone(backend::IoRequest* request) override;
};

class LogicalUnit {
 public:
  // LogicalUnit does not own device or policy; both must outlive it. policy may be null.
  LogicalUnit(backend::BlockDevice* device, LogicalUnitConfig config,
              ReservationPolicy* policy = nullptr);
  ~LogicalUnit();
  LogicalUnit(const LogicalUnit&) = delete;
  LogicalUnit& operator=(const LogicalUnit&) = delete;

  // Execute runs one command; task->Complete() is called exactly once, possibly before return.
  void Execute(Task* task);

  // SetReservationPolicy installs (or removes, with nullptr) the reservation hook.
  void SetReservationPolicy(ReservationPolicy* policy) { policy_.store(policy); }
  ReservationPolicy* reservation_policy() const { return policy_.load(); }

  // Capacity in logical blocks as the backend reports it now.
  uint64_t BlockCount() const { return device_->SizeBytes() / block_size_; }
  uint32_t block_size() const { return block_size_; }
  const LogicalUnitConfig& config() const { return config_; }
  backend::IoCounters& counters() { return counters_; }

  // Opcode table (opcode_table.cc), public so tests and REPORT SUPPORTED OPCODES can walk it.
  enum OpcodeFlags : uint8_t {
    kModifiesMedium = 1,  // WRITE PROTECTED when read-only.
    kReservation = 2,     // Executed by the ReservationPolicy.
  };
  struct OpcodeEntry {
    uint8_t opcode;
    bool has_service_action;
    uint16_t service_action;
    uint8_t cdb_length;
    uint8_t flags;
    std::array<uint8_t, 16> usage;  // CDB USAGE DATA (SPC-4 §6.35.3); usage[0] = opcode.
    void (LogicalUnit::*handler)(Task*);
    const char* name;
  };
  static std::span<const OpcodeEntry> Opcodes();
  // FindOpcode returns the entry for cdb, or null. *bad_service_action tells an opcode that
  // exists with an unknown service action apart from an unknown opcode.
  static const OpcodeEntry* FindOpcode(const uint8_t* cdb, bool* bad_service_action);
  // Whether the command is supported now (reservation opcodes need a policy that handles them).
  bool IsSupported(const OpcodeEntry& entry) const;

 private:
  friend struct CommandContext;

  // --- logical_unit.cc: plumbing. ---
  CommandContext* AcquireContext(Task* task, backend::IoCounters::Kind kind);
  void ReleaseContext(CommandContext* ctx);
  // Finish completes the task, records counters and returns the context to the pool.
  void Finish(CommandContext* ctx);
  // LockRange runs ctx->on_locked once no conflicting command holds an overlapping range:
  // exclusive holders (COMPARE AND WRITE) conflict with every overlapping writer.
  void LockRange(CommandContext* ctx);
  void UnlockRange(CommandContext* ctx);
  bool ConflictsLocked(const CommandContext* ctx, const CommandContext* until) const;
  // Submit starts ctx->io with completion step.
  // RunStep calls a continuation (kept out of line: GCC misreads inline member-pointer calls).
  void RunStep(CommandContext* ctx, CommandContext::Step step);
  void SubmitIo(CommandContext* ctx, backend::IoOp op, CommandContext::Step on_done);
  // Fails the task with sense from a backend errno.
  void SetIoError(CommandContext* ctx, bool write);
  // SetTransferLength records the bytes the CDB itself transfers (Task::transfer_length), so the
  // transport can report residual overflow/underflow against its expected length.
  static void SetTransferLength(Task* task, uint64_t bytes);
  // CheckRange validates [lba, lba+blocks) against capacity and sets sense on failure.
  bool CheckRange(Task* task, uint64_t lba, uint64_t blocks);
  // Respond copies a built response into data_in (truncated to the allocation length) and GOOD.
  static void Respond(Task* task, std::span<const uint8_t> data, uint32_t allocation_length);

  // --- Simple SPC commands (logical_unit.cc). ---
  void TestUnitReady(Task* task);
  void RequestSense(Task* task);
  void StartStopUnit(Task* task);
  void PreventAllowMediumRemoval(Task* task);
  void ReservationCommand(Task* task);
  void ReportLunsSelf(Task* task);

  // --- inquiry.cc ---
  void Inquiry(Task* task);
  size_t BuildStandardInquiry(uint8_t* out) const;
  size_t BuildVpd(uint8_t page, const Task* task, uint8_t* out, size_t capacity) const;

  // --- read_capacity.cc ---
  void ReadCapacity10(Task* task);
  void ReadCapacity16(Task* task);
  void GetLbaStatus(Task* task);
  void GetLbaStatusRead(CommandContext* ctx);

  // --- read_write.cc ---
  void Read6(Task* task);
  void Read10(Task* task);
  void Read12(Task* task);
  void Read16(Task* task);
  void Write6(Task* task);
  void Write10(Task* task);
  void Write12(Task* task);
  void Write16(Task* task);
  void WriteAndVerify10(Task* task);
  void WriteAndVerify16(Task* task);
  void Verify10(Task* task);
  void Verify16(Task* task);
  void WriteAndVerify12(Task* task);
  void Verify12(Task* task);
  void PreFetch10(Task* task);
  void PreFetch16(Task* task);
  void StartPreFetch(Task* task, uint64_t lba, uint64_t blocks);
  void ReadDefectData10(Task* task);
  void ReadDefectData12(Task* task);
  void SynchronizeCache10(Task* task);
  void SynchronizeCache16(Task* task);
  void StartRead(Task* task, uint64_t lba, uint64_t blocks);
  void ReadDone(CommandContext* ctx);
  void ReadTailDone(CommandContext* ctx);
  void StartWrite(Task* task, uint64_t lba, uint64_t blocks, bool fua);
  void WriteLocked(CommandContext* ctx);
  void WriteDone(CommandContext* ctx);
  void FlushDone(CommandContext* ctx);
  void StartVerify(Task* task, uint64_t lba, uint64_t blocks, uint8_t bytchk);
  void VerifyChunk(CommandContext* ctx);
  void VerifyChunkDone(CommandContext* ctx);
  void StartSynchronizeCache(Task* task, uint64_t lba, uint64_t blocks);

  // --- write_same.cc ---
  void WriteSame10(Task* task);
  void WriteSame16(Task* task);
  void StartWriteSame(Task* task, uint64_t lba, uint64_t blocks, uint8_t flags);
  void WriteSameLocked(CommandContext* ctx);
  void WriteSameChunk(CommandContext* ctx);
  void WriteSameChunkDone(CommandContext* ctx);

  // --- unmap.cc ---
  void Unmap(Task* task);
  void UnmapLocked(CommandContext* ctx);
  void UnmapNext(CommandContext* ctx);

  // --- compare_and_write.cc ---
  void CompareAndWrite(Task* task);
  void CompareAndWriteLocked(CommandContext* ctx);
  void CompareAndWriteReadDone(CommandContext* ctx);
  void CompareAndWriteWriteDone(CommandContext* ctx);

  // --- mode_pages.cc ---
  void ModeSense6(Task* task);
  void ModeSense10(Task* task);
  void ModeSense(Task* task, bool ten);
  size_t BuildModePage(uint8_t page, uint8_t page_control, uint8_t* out) const;
  void ModeSelect6(Task* task);
  void ModeSelect10(Task* task);
  void ModeSelect(Task* task, bool ten);

  // --- report_opcodes.cc ---
  void ReportSupportedOperationCodes(Task* task);
  void ReportSupportedTaskManagementFunctions(Task* task);

  backend::BlockDevice* device_;
  const LogicalUnitConfig config_;
  const uint32_t block_size_;
  std::atomic<ReservationPolicy*> policy_;
  backend::IoCounters counters_;

  std::mutex pool_mutex_;  // Guards contexts_ and free_.
  std::vector<std::unique_ptr<CommandContext>> contexts_;
  std::vector<CommandContext*> free_;

  // Range lock: active_ holds commands that modify the medium, waiting_ those that must wait for
  // an exclusive holder (or wait to take one). Never held across I/O or a continuation.
  std::mutex range_mutex_;
  CommandContext* active_ = nullptr;
  CommandContext* waiting_head_ = nullptr;
  CommandContext* waiting_tail_ = nullptr;
  size_t exclusive_count_ = 0;  // Exclusive holders among active_ and waiting.
};

}  // namespace vios::scsi
