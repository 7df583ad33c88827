// WRITE SAME(10/16) (SBC-3 §5.41, §5.42), including the UNMAP bit and NDOB (no data-out buffer).
//
// A zero block (or NDOB) becomes one backend request: kDiscard when UNMAP is set and the backend
// deallocates, kWriteZeroes otherwise. Any other block is replicated into a scratch buffer of at
// most kChunkBytes and written chunk by chunk.
#include <algorithm>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr uint64_t kChunkBytes = 1u << 20;
constexpr uint8_t kUnmapBit = 0x08;
constexpr uint8_t kNdobBit = 0x01;

bool IsZero(std::span<const uint8_t> data) {
  return std::all_of(data.begin(), data.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

void LogicalUnit::WriteSame10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWriteSame(task, wire::Load32(c + 2), wire::Load16(c + 7), c[1] & kUnmapBit);
}

void LogicalUnit::WriteSame16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWriteSame(task, wire::Load64(c + 2), wire::Load32(c + 10),
                 static_cast<uint8_t>(c[1] & (kUnmapBit | kNdobBit)));
}

void LogicalUnit::StartWriteSame(Task* task, uint64_t lba, uint64_t blocks, uint8_t flags) {
  SetTransferLength(task, (flags & kNdobBit) != 0 ? 0 : block_size_);
  // WSNZ=1 in VPD B0: zero blocks is not supported; so is anything beyond MAXIMUM WRITE SAME
  // LENGTH (SBC-3 §5.42).
  if (blocks == 0 || blocks > config_.max_write_same_blocks) {
    SetInvalidFieldInCdb(task, 0);
    task->Complete();
    return;
  }
  if (!CheckRange(task, lba, blocks)) {
    task->Complete();
    return;
  }
  const bool ndob = (flags & kNdobBit) != 0;
  // Exactly one block of Data-Out: a shorter or longer buffer means the initiator and the CDB
  // disagree about the command, so nothing is written (SBC-3 §5.41; libiscsi's
  // InvalidDataOutSize tests expect ILLEGAL REQUEST for both).
  if (!ndob && task->data_out.size() != block_size_) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInInformationUnit);
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kWrite);
  ctx->lba = lba;
  ctx->blocks = blocks;
  ctx->unmap = (flags & kUnmapBit) != 0;
  ctx->stage = ndob || IsZero(task->data_out.first(block_size_)) ? 1 : 0;  // 1: zero pattern.
  ctx->on_locked = &LogicalUnit::WriteSameLocked;
  LockRange(ctx);
}

void LogicalUnit::WriteSameLocked(CommandContext* ctx) {
  if (ctx->stage == 1) {
    ctx->io.offset = ctx->lba * block_size_;
    ctx->io.length = ctx->blocks * block_size_;
    const bool discard = ctx->unmap && device_->SupportsDiscard();
    ctx->cursor = ctx->blocks;
    SubmitIo(ctx, discard ? backend::IoOp::kDiscard : backend::IoOp::kWriteZeroes,
             &LogicalUnit::WriteSameChunkDone);
    return;
  }
  const uint64_t chunk_blocks = std::min<uint64_t>(ctx->blocks, kChunkBytes / block_size_);
  ctx->scratch.resize(std::max<size_t>(ctx->scratch.size(), chunk_blocks * block_size_));
  for (uint64_t b = 0; b < chunk_blocks; ++b) {
    std::memcpy(ctx->scratch.data() + b * block_size_, ctx->task->data_out.data(), block_size_);
  }
  WriteSameChunk(ctx);
}

void LogicalUnit::WriteSameChunk(CommandContext* ctx) {
  const uint64_t chunk_blocks =
      std::min<uint64_t>(ctx->blocks - ctx->cursor, kChunkBytes / block_size_);
  ctx->io.offset = (ctx->lba + ctx->cursor) * block_size_;
  ctx->io.write_buffer = std::span<const uint8_t>(ctx->scratch.data(), chunk_blocks * block_size_);
  ctx->cursor += chunk_blocks;
  SubmitIo(ctx, backend::IoOp::kWrite, &LogicalUnit::WriteSameChunkDone);
}

void LogicalUnit::WriteSameChunkDone(CommandContext* ctx) {
  if (ctx->io.result != 0) {
    SetIoError(ctx, true);
    Finish(ctx);
    return;
  }
  if (ctx->cursor < ctx->blocks) {
    WriteSameChunk(ctx);
    return;
  }
  ctx->task->SetGood();
  Finish(ctx);
}

}  // namespace vios::scsi
