// LogicalUnit plumbing: command dispatch through the opcode table, the context pool, the LBA range
// lock that makes COMPARE AND WRITE atomic, and the simple SPC commands without data.
#include "node-agent/scsi/logical_unit.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "common/log/log.h"

namespace vios::scsi {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool Overlaps(const CommandContext* a, const CommandContext* b) {
  return a->lba < b->lba + b->blocks && b->lba < a->lba + a->blocks;
}

bool Conflict(const CommandContext* a, const CommandContext* b) {
  return (a->exclusive || b->exclusive) && Overlaps(a, b);
}

}  // namespace

void CommandContext::IoDone(backend::IoRequest* request) {
  (void)request;
  lu->RunStep(this, on_io_done);
}

void LogicalUnit::RunStep(CommandContext* ctx, CommandContext::Step step) { (this->*step)(ctx); }

LogicalUnit::LogicalUnit(backend::BlockDevice* device, LogicalUnitConfig config,
                         ReservationPolicy* policy)
    : device_(device),
      config_(std::move(config)),
      block_size_(device->BlockSize() == 0 ? 512 : device->BlockSize()),
      policy_(policy) {
  contexts_.reserve(config_.preallocated_contexts);
  free_.reserve(config_.preallocated_contexts * 2);
  for (size_t i = 0; i < config_.preallocated_contexts; ++i) {
    contexts_.push_back(std::make_unique<CommandContext>());
    contexts_.back()->lu = this;
    free_.push_back(contexts_.back().get());
  }
}

LogicalUnit::~LogicalUnit() = default;

bool LogicalUnit::IsSupported(const OpcodeEntry& entry) const {
  if ((entry.flags & kReservation) == 0) {
    return true;
  }
  ReservationPolicy* policy = policy_.load();
  return policy != nullptr && policy->Handles(entry.opcode);
}

void LogicalUnit::Execute(Task* task) {
  task->ResetResult();
  if (task->cdb_length == 0) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  bool bad_service_action = false;
  const OpcodeEntry* entry = FindOpcode(task->cdb.data(), &bad_service_action);
  if (entry == nullptr || !IsSupported(*entry)) {
    if (bad_service_action) {
      SetInvalidFieldInCdb(task, 1, 4);
    } else {
      SetSense(task, SenseKey::kIllegalRequest, kAscInvalidCommandOperationCode);
    }
    task->Complete();
    return;
  }
  if (task->cdb_length < entry->cdb_length) {
    SetInvalidFieldInCdb(task, 0);
    task->Complete();
    return;
  }
  // Reserved bits must be zero (SPC-4 §4.3.2): the usage mask says which bits a command uses.
  for (size_t i = 1; i < entry->cdb_length; ++i) {
    const uint8_t extra = task->cdb[i] & static_cast<uint8_t>(~entry->usage[i]);
    if (extra != 0) {
      int bit = 7;
      while ((extra & (1u << bit)) == 0) {
        --bit;
      }
      SetInvalidFieldInCdb(task, static_cast<uint16_t>(i), bit);
      task->Complete();
      return;
    }
  }
  if ((entry->flags & kReservation) == 0) {
    ReservationPolicy* policy = policy_.load();
    if (policy != nullptr && task->nexus != nullptr &&
        !policy->Allows(*task->nexus, task->cdb.data(), task->cdb_length)) {
      task->status = Status::kReservationConflict;
      task->Complete();
      return;
    }
  }
  if (config_.read_only && (entry->flags & kModifiesMedium) != 0) {
    SetSense(task, SenseKey::kDataProtect, kAscWriteProtected);
    task->Complete();
    return;
  }
  (this->*entry->handler)(task);
}

CommandContext* LogicalUnit::AcquireContext(Task* task, backend::IoCounters::Kind kind) {
  CommandContext* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (free_.empty()) {
      // Grows only under a new peak of concurrency; steady state reuses contexts.
      contexts_.push_back(std::make_unique<CommandContext>());
      contexts_.back()->lu = this;
      ctx = contexts_.back().get();
    } else {
      ctx = free_.back();
      free_.pop_back();
    }
  }
  ctx->task = task;
  ctx->io = backend::IoRequest{};
  ctx->io.completion = ctx;
  ctx->on_io_done = nullptr;
  ctx->on_locked = nullptr;
  ctx->lba = 0;
  ctx->blocks = 0;
  ctx->cursor = 0;
  ctx->stage = 0;
  ctx->fua = false;
  ctx->unmap = false;
  ctx->exclusive = false;
  ctx->locked = false;
  ctx->kind = kind;
  ctx->start_ns = NowNs();
  ctx->prev = ctx->next = ctx->ready_next = nullptr;
  return ctx;
}

void LogicalUnit::ReleaseContext(CommandContext* ctx) {
  ctx->task = nullptr;
  std::lock_guard<std::mutex> lock(pool_mutex_);
  free_.push_back(ctx);
}

void LogicalUnit::Finish(CommandContext* ctx) {
  Task* task = ctx->task;
  const uint64_t bytes = ctx->blocks * block_size_;
  counters_.Record(ctx->kind, ctx->kind == backend::IoCounters::Kind::kOther ? 0 : bytes,
                   NowNs() - ctx->start_ns, task->status == Status::kGood);
  if (ctx->locked) {
    UnlockRange(ctx);
  }
  ReleaseContext(ctx);
  task->Complete();
}

bool LogicalUnit::ConflictsLocked(const CommandContext* ctx, const CommandContext* until) const {
  for (const CommandContext* a = active_; a != nullptr; a = a->next) {
    if (Conflict(a, ctx)) {
      return true;
    }
  }
  for (const CommandContext* w = waiting_head_; w != nullptr && w != until; w = w->next) {
    if (Conflict(w, ctx)) {
      return true;
    }
  }
  return false;
}

void LogicalUnit::LockRange(CommandContext* ctx) {
  {
    std::lock_guard<std::mutex> lock(range_mutex_);
    if (ctx->exclusive) {
      ++exclusive_count_;
    }
    // Fast path: without any exclusive holder nothing conflicts.
    if (exclusive_count_ != 0 && ConflictsLocked(ctx, nullptr)) {
      ctx->next = nullptr;
      if (waiting_tail_ != nullptr) {
        waiting_tail_->next = ctx;
      } else {
        waiting_head_ = ctx;
      }
      waiting_tail_ = ctx;
      return;
    }
    ctx->prev = nullptr;
    ctx->next = active_;
    if (active_ != nullptr) {
      active_->prev = ctx;
    }
    active_ = ctx;
    ctx->locked = true;
  }
  RunStep(ctx, ctx->on_locked);
}

void LogicalUnit::UnlockRange(CommandContext* ctx) {
  CommandContext* ready = nullptr;
  CommandContext** ready_tail = &ready;
  {
    std::lock_guard<std::mutex> lock(range_mutex_);
    if (ctx->prev != nullptr) {
      ctx->prev->next = ctx->next;
    } else {
      active_ = ctx->next;
    }
    if (ctx->next != nullptr) {
      ctx->next->prev = ctx->prev;
    }
    ctx->locked = false;
    if (ctx->exclusive) {
      --exclusive_count_;
    }
    // Admit waiters in FIFO order that conflict neither with holders nor with earlier waiters.
    CommandContext* prev_waiting = nullptr;
    CommandContext* w = waiting_head_;
    while (w != nullptr) {
      CommandContext* following = w->next;
      if (!ConflictsLocked(w, w)) {
        if (prev_waiting != nullptr) {
          prev_waiting->next = following;
        } else {
          waiting_head_ = following;
        }
        if (waiting_tail_ == w) {
          waiting_tail_ = prev_waiting;
        }
        w->prev = nullptr;
        w->next = active_;
        if (active_ != nullptr) {
          active_->prev = w;
        }
        active_ = w;
        w->locked = true;
        w->ready_next = nullptr;
        *ready_tail = w;
        ready_tail = &w->ready_next;
      } else {
        prev_waiting = w;
      }
      w = following;
    }
  }
  while (ready != nullptr) {
    CommandContext* r = ready;
    ready = ready->ready_next;
    RunStep(r, r->on_locked);
  }
}

void LogicalUnit::SubmitIo(CommandContext* ctx, backend::IoOp op, CommandContext::Step on_done) {
  ctx->io.op = op;
  ctx->io.result = 0;
  ctx->io.completion = ctx;
  ctx->on_io_done = on_done;
  device_->Submit(&ctx->io);
}

void LogicalUnit::SetIoError(CommandContext* ctx, bool write) {
  const int err = -ctx->io.result;
  switch (err) {
    case EAGAIN:
    case ENOTCONN:
    case ETIMEDOUT:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ESHUTDOWN:
      // Path trouble: retryable for the initiator (SPC-4 ABORTED COMMAND).
      SetSense(ctx->task, SenseKey::kAbortedCommand, kAscLogicalUnitCommunicationFailure);
      break;
    case ENOSPC:
      SetSense(ctx->task, SenseKey::kDataProtect, Asc{0x27, 0x07});  // SPACE ALLOCATION FAILED
      break;
    default:
      SetSense(ctx->task, SenseKey::kMediumError,
               write ? kAscWriteError : kAscUnrecoveredReadError);
      break;
  }
  VIOS_LOG(kWarning, "backend I/O failed")
      .Field("backend", device_->Describe())
      .Field("errno", err)
      .Field("lba", ctx->lba);
}

void LogicalUnit::SetTransferLength(Task* task, uint64_t bytes) {
  task->transfer_length =
      static_cast<uint32_t>(std::min<uint64_t>(bytes, Task::kUnknownLength - 1));
}

bool LogicalUnit::CheckRange(Task* task, uint64_t lba, uint64_t blocks) {
  const uint64_t capacity = BlockCount();
  if (lba > capacity || blocks > capacity - lba) {
    SetSense(task, SenseKey::kIllegalRequest, kAscLbaOutOfRange);
    return false;
  }
  return true;
}

void LogicalUnit::Respond(Task* task, std::span<const uint8_t> data, uint32_t allocation_length) {
  size_t n = data.size();
  n = std::min<size_t>(n, allocation_length);
  n = std::min<size_t>(n, task->data_in.size());
  if (n != 0) {
    std::memcpy(task->data_in.data(), data.data(), n);
  }
  task->data_in_length = static_cast<uint32_t>(n);
  task->SetGood();
}

void LogicalUnit::TestUnitReady(Task* task) {
  task->SetGood();
  task->Complete();
}

// REQUEST SENSE without a pending unit attention (the Device reports those): NO SENSE, in fixed or
// descriptor format (SPC-4 §6.39).
void LogicalUnit::RequestSense(Task* task) {
  std::array<uint8_t, 18> data{};
  size_t length = 0;
  if ((task->cdb[1] & 0x01) != 0) {
    data[0] = 0x72;
    length = 8;
  } else {
    data[0] = 0x70;
    data[7] = 10;
    length = 18;
  }
  Respond(task, std::span<const uint8_t>(data.data(), length), task->cdb[4]);
  task->Complete();
}

// START STOP UNIT (SBC-3 §5.25): a virtual disk is always spinning; accepted as a no-op.
void LogicalUnit::StartStopUnit(Task* task) {
  task->SetGood();
  task->Complete();
}

// PREVENT ALLOW MEDIUM REMOVAL (SBC-3 §5.?): the medium is not removable; accepted as a no-op.
void LogicalUnit::PreventAllowMediumRemoval(Task* task) {
  task->SetGood();
  task->Complete();
}

void LogicalUnit::ReservationCommand(Task* task) {
  ReservationPolicy* policy = policy_.load();
  if (policy == nullptr) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  policy->Execute(task);
}

}  // namespace vios::scsi

namespace vios::scsi {

// REPORT LUNS reaching a LogicalUnit directly (without a Device in front): the LU reports itself
// as LUN 0. A Device answers REPORT LUNS with its whole LUN map before this is reached.
void LogicalUnit::ReportLunsSelf(Task* task) {
  const uint8_t select = task->cdb[2];
  if (select > 0x02) {
    SetInvalidFieldInCdb(task, 2);
    task->Complete();
    return;
  }
  std::array<uint8_t, 16> data{};
  wire::Store32(data.data(), 8);
  Respond(task, data, wire::Load32(task->cdb.data() + 6));
  task->Complete();
}

}  // namespace vios::scsi
