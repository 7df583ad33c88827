// COMPARE AND WRITE (SBC-3 §5.2): read, compare with the verify half of Data-Out, and only if
// equal write the write half. The LBA range is held exclusively from the read to the write's
// completion, so no overlapping write on this LU can slip in between (atomicity per LU).
#include <algorithm>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {

void LogicalUnit::CompareAndWrite(Task* task) {
  const uint8_t* c = task->cdb.data();
  const uint64_t lba = wire::Load64(c + 2);
  const uint64_t blocks = c[13];
  SetTransferLength(task, 2 * blocks * block_size_);
  if (blocks > config_.max_compare_and_write_blocks) {
    SetInvalidFieldInCdb(task, 13);
    task->Complete();
    return;
  }
  if (!CheckRange(task, lba, blocks)) {
    task->Complete();
    return;
  }
  if (blocks == 0) {
    // SBC-3 §5.2: zero blocks is not an error, but Data-Out for a command that transfers none
    // means the length field disagrees with the initiator (libiscsi sends 256 blocks, which wraps
    // to 0 in this one-byte field, and expects INVALID FIELD IN CDB).
    if (task->data_out.empty()) {
      task->SetGood();
    } else {
      SetInvalidFieldInCdb(task, 13);
    }
    task->Complete();
    return;
  }
  // The verify and write halves must together be exactly the Data-Out buffer: with any other
  // size the halves would be split at the wrong place (SBC-3 §5.2), so refuse rather than guess.
  if (task->data_out.size() != 2 * blocks * block_size_) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInInformationUnit);
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kWrite);
  ctx->lba = lba;
  ctx->blocks = blocks;
  ctx->fua = (c[1] & 0x08) != 0 && config_.write_cache;
  ctx->exclusive = true;
  ctx->on_locked = &LogicalUnit::CompareAndWriteLocked;
  LockRange(ctx);
}

void LogicalUnit::CompareAndWriteLocked(CommandContext* ctx) {
  const size_t bytes = ctx->blocks * block_size_;
  ctx->scratch.resize(std::max(ctx->scratch.size(), bytes));
  ctx->io.offset = ctx->lba * block_size_;
  ctx->io.read_buffer = std::span<uint8_t>(ctx->scratch.data(), bytes);
  SubmitIo(ctx, backend::IoOp::kRead, &LogicalUnit::CompareAndWriteReadDone);
}

void LogicalUnit::CompareAndWriteReadDone(CommandContext* ctx) {
  Task* task = ctx->task;
  if (ctx->io.result != 0) {
    SetIoError(ctx, false);
    Finish(ctx);
    return;
  }
  const size_t bytes = ctx->blocks * block_size_;
  for (size_t i = 0; i < bytes; ++i) {
    if (ctx->scratch[i] != task->data_out[i]) {
      // INFORMATION: offset of the first byte that differs (SBC-3 §5.2).
      SetSenseWithInformation(task, SenseKey::kMiscompare, kAscMiscompareDuringVerify,
                              static_cast<uint32_t>(i));
      Finish(ctx);
      return;
    }
  }
  ctx->io.offset = ctx->lba * block_size_;
  ctx->io.write_buffer = task->data_out.subspan(bytes, bytes);
  SubmitIo(ctx, backend::IoOp::kWrite, &LogicalUnit::CompareAndWriteWriteDone);
}

void LogicalUnit::CompareAndWriteWriteDone(CommandContext* ctx) {
  WriteDone(ctx);  // Same tail as WRITE: FUA flush, then GOOD.
}

}  // namespace vios::scsi
