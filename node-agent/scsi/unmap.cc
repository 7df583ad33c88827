// UNMAP (SBC-3 §5.28): parameter list parsing with the checks the standard requires, then one
// backend discard per block descriptor, in order.
#include <algorithm>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {

void LogicalUnit::Unmap(Task* task) {
  const uint16_t list_length = wire::Load16(task->cdb.data() + 7);
  SetTransferLength(task, list_length);
  if (list_length == 0) {
    task->SetGood();  // Not an error: nothing to unmap (SBC-3 §5.28.1).
    task->Complete();
    return;
  }
  // The header is 8 bytes; fewer than that cannot hold the lengths we must validate.
  if (list_length < 8 || task->data_out.size() < list_length) {
    SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
    task->Complete();
    return;
  }
  const uint8_t* p = task->data_out.data();
  const uint16_t data_length = wire::Load16(p);
  const uint16_t descriptor_length = wire::Load16(p + 2);
  // UNMAP DATA LENGTH counts the bytes after itself; the descriptor length must be a multiple of
  // 16 and fit in the list.
  if (data_length + 2u > list_length || descriptor_length + 8u > list_length ||
      descriptor_length % 16 != 0 || (data_length != 0 && data_length < descriptor_length + 6u)) {
    SetSense(task, SenseKey::kIllegalRequest, kAscParameterListLengthError);
    task->Complete();
    return;
  }
  const size_t count = descriptor_length / 16;
  if (count > config_.max_unmap_descriptors) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInParameterList);
    task->Complete();
    return;
  }
  const uint64_t capacity = BlockCount();
  uint64_t low = UINT64_MAX;
  uint64_t high = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* d = p + 8 + 16 * i;
    const uint64_t lba = wire::Load64(d);
    const uint32_t blocks = wire::Load32(d + 8);
    if (blocks > config_.max_unmap_blocks) {
      SetInvalidFieldInParameterList(task, static_cast<uint16_t>(8 + 16 * i + 8));
      task->Complete();
      return;
    }
    if (lba > capacity || blocks > capacity - lba) {
      SetSense(task, SenseKey::kIllegalRequest, kAscLbaOutOfRange);
      task->Complete();
      return;
    }
    if (blocks != 0) {
      low = std::min(low, lba);
      high = std::max(high, lba + blocks);
    }
  }
  if (low == UINT64_MAX) {
    task->SetGood();
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kOther);
  // The range lock covers the span of all descriptors: UNMAP modifies the medium like a write.
  ctx->lba = low;
  ctx->blocks = high - low;
  ctx->stage = static_cast<uint32_t>(count);
  ctx->on_locked = &LogicalUnit::UnmapLocked;
  LockRange(ctx);
}

void LogicalUnit::UnmapLocked(CommandContext* ctx) {
  ctx->cursor = 0;  // Next descriptor index.
  ctx->io.result = 0;
  UnmapNext(ctx);
}

void LogicalUnit::UnmapNext(CommandContext* ctx) {
  if (ctx->io.result != 0) {
    SetIoError(ctx, true);
    Finish(ctx);
    return;
  }
  const uint8_t* p = ctx->task->data_out.data();
  while (ctx->cursor < ctx->stage) {
    const uint8_t* d = p + 8 + 16 * ctx->cursor;
    ++ctx->cursor;
    const uint32_t blocks = wire::Load32(d + 8);
    if (blocks == 0) {
      continue;
    }
    ctx->io.offset = wire::Load64(d) * block_size_;
    ctx->io.length = static_cast<uint64_t>(blocks) * block_size_;
    // Without real deallocation the backend zeroes, which keeps LBPRZ semantics.
    SubmitIo(ctx,
             device_->SupportsDiscard() ? backend::IoOp::kDiscard : backend::IoOp::kWriteZeroes,
             &LogicalUnit::UnmapNext);
    return;
  }
  ctx->task->SetGood();
  Finish(ctx);
}

}  // namespace vios::scsi
