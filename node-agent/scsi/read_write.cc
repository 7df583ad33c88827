// READ/WRITE(6/10/12/16), WRITE AND VERIFY, VERIFY and SYNCHRONIZE CACHE (SBC-3 §5.8-§5.36).
//
// Data moves directly between the task's buffers and the backend. The transport's expected
// transfer length may differ from the CDB's (SAM-5 §5.4.3 overflow/underflow): a READ transfers
// what fits into data_in (data_in_length tells the transport how much); a WRITE whose Data-Out is
// shorter than the CDB demands writes only the whole blocks it received and completes GOOD, the
// transport reporting the rest as residual overflow (RFC 7143 §11.4.5.1, as libiscsi's residual
// tests expect); a partial block is refused (INVALID FIELD IN COMMAND INFORMATION UNIT).
#include <algorithm>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr size_t kVerifyChunkBytes = 1u << 20;

}  // namespace

void LogicalUnit::Read6(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartRead(task, wire::Load24(c + 1) & 0x1FFFFF, c[4] == 0 ? 256 : c[4]);
}
void LogicalUnit::Read10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartRead(task, wire::Load32(c + 2), wire::Load16(c + 7));
}
void LogicalUnit::Read12(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartRead(task, wire::Load32(c + 2), wire::Load32(c + 6));
}
void LogicalUnit::Read16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartRead(task, wire::Load64(c + 2), wire::Load32(c + 10));
}
void LogicalUnit::Write6(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWrite(task, wire::Load24(c + 1) & 0x1FFFFF, c[4] == 0 ? 256 : c[4], false);
}
void LogicalUnit::Write10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWrite(task, wire::Load32(c + 2), wire::Load16(c + 7), (c[1] & 0x08) != 0);
}
void LogicalUnit::Write12(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWrite(task, wire::Load32(c + 2), wire::Load32(c + 6), (c[1] & 0x08) != 0);
}
void LogicalUnit::Write16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartWrite(task, wire::Load64(c + 2), wire::Load32(c + 10), (c[1] & 0x08) != 0);
}

// WRITE AND VERIFY (SBC-3 §5.40): the backend acknowledges a write only once it holds the data,
// so verification reduces to a durable write; BYTCHK 00b/01b accepted.
void LogicalUnit::WriteAndVerify10(Task* task) {
  const uint8_t* c = task->cdb.data();
  if (((c[1] >> 1) & 0x3) > 1) {
    SetInvalidFieldInCdb(task, 1, 2);
    task->Complete();
    return;
  }
  StartWrite(task, wire::Load32(c + 2), wire::Load16(c + 7), true);
}
void LogicalUnit::WriteAndVerify16(Task* task) {
  const uint8_t* c = task->cdb.data();
  if (((c[1] >> 1) & 0x3) > 1) {
    SetInvalidFieldInCdb(task, 1, 2);
    task->Complete();
    return;
  }
  StartWrite(task, wire::Load64(c + 2), wire::Load32(c + 10), true);
}
void LogicalUnit::WriteAndVerify12(Task* task) {
  const uint8_t* c = task->cdb.data();
  if (((c[1] >> 1) & 0x3) > 1) {
    SetInvalidFieldInCdb(task, 1, 2);
    task->Complete();
    return;
  }
  StartWrite(task, wire::Load32(c + 2), wire::Load32(c + 6), true);
}
void LogicalUnit::Verify12(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartVerify(task, wire::Load32(c + 2), wire::Load32(c + 6), (c[1] >> 1) & 0x3);
}
void LogicalUnit::Verify10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartVerify(task, wire::Load32(c + 2), wire::Load16(c + 7), (c[1] >> 1) & 0x3);
}
void LogicalUnit::Verify16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartVerify(task, wire::Load64(c + 2), wire::Load32(c + 10), (c[1] >> 1) & 0x3);
}
void LogicalUnit::SynchronizeCache10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartSynchronizeCache(task, wire::Load32(c + 2), wire::Load16(c + 7));
}
void LogicalUnit::SynchronizeCache16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartSynchronizeCache(task, wire::Load64(c + 2), wire::Load32(c + 10));
}

void LogicalUnit::StartRead(Task* task, uint64_t lba, uint64_t blocks) {
  SetTransferLength(task, blocks * block_size_);
  if (blocks > config_.max_transfer_bytes / block_size_) {
    SetInvalidFieldInCdb(task, 0);
    task->Complete();
    return;
  }
  if (!CheckRange(task, lba, blocks)) {
    task->Complete();
    return;
  }
  const uint64_t bytes = blocks * block_size_;
  const uint64_t room = std::min<uint64_t>(bytes, task->data_in.size());
  if (room == 0) {
    task->SetGood();
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kRead);
  ctx->lba = lba;
  ctx->blocks = blocks;
  ctx->cursor = room / block_size_;  // Whole blocks that fit into data_in.
  if (ctx->cursor == 0) {
    ReadDone(ctx);  // Only a partial first block fits: go straight to the tail read.
    return;
  }
  ctx->io.offset = lba * block_size_;
  ctx->io.read_buffer = task->data_in.first(ctx->cursor * block_size_);
  SubmitIo(ctx, backend::IoOp::kRead, &LogicalUnit::ReadDone);
}

void LogicalUnit::ReadDone(CommandContext* ctx) {
  Task* task = ctx->task;
  if (ctx->io.result != 0) {
    SetIoError(ctx, false);
    Finish(ctx);
    return;
  }
  const uint64_t room = std::min<uint64_t>(ctx->blocks * block_size_, task->data_in.size());
  if (room % block_size_ != 0) {
    // A partial last block (EDTL smaller than the CDB's length): read it aside, copy what fits.
    ctx->scratch.resize(std::max<size_t>(ctx->scratch.size(), block_size_));
    ctx->io.offset = (ctx->lba + ctx->cursor) * block_size_;
    ctx->io.read_buffer = std::span<uint8_t>(ctx->scratch.data(), block_size_);
    SubmitIo(ctx, backend::IoOp::kRead, &LogicalUnit::ReadTailDone);
    return;
  }
  task->data_in_length = static_cast<uint32_t>(room);
  task->SetGood();
  Finish(ctx);
}

void LogicalUnit::ReadTailDone(CommandContext* ctx) {
  Task* task = ctx->task;
  if (ctx->io.result != 0) {
    SetIoError(ctx, false);
    Finish(ctx);
    return;
  }
  const uint64_t room = task->data_in.size();
  const uint64_t done = ctx->cursor * block_size_;
  std::memcpy(task->data_in.data() + done, ctx->scratch.data(), room - done);
  task->data_in_length = static_cast<uint32_t>(room);
  task->SetGood();
  Finish(ctx);
}

void LogicalUnit::StartWrite(Task* task, uint64_t lba, uint64_t blocks, bool fua) {
  SetTransferLength(task, blocks * block_size_);
  if (blocks > config_.max_transfer_bytes / block_size_) {
    SetInvalidFieldInCdb(task, 0);
    task->Complete();
    return;
  }
  if (!CheckRange(task, lba, blocks)) {
    task->Complete();
    return;
  }
  if (blocks == 0) {
    task->SetGood();
    task->Complete();
    return;
  }
  uint64_t bytes = blocks * block_size_;
  if (task->data_out.size() < bytes) {
    if (task->data_out.size() % block_size_ != 0) {
      SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInInformationUnit);
      task->Complete();
      return;
    }
    blocks = task->data_out.size() / block_size_;
    bytes = blocks * block_size_;
    if (blocks == 0) {
      task->SetGood();
      task->Complete();
      return;
    }
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kWrite);
  ctx->lba = lba;
  ctx->blocks = blocks;
  ctx->fua = fua && config_.write_cache;
  ctx->io.offset = lba * block_size_;
  ctx->io.write_buffer = task->data_out.first(bytes);
  ctx->on_locked = &LogicalUnit::WriteLocked;
  LockRange(ctx);
}

void LogicalUnit::WriteLocked(CommandContext* ctx) {
  SubmitIo(ctx, backend::IoOp::kWrite, &LogicalUnit::WriteDone);
}

void LogicalUnit::WriteDone(CommandContext* ctx) {
  if (ctx->io.result != 0) {
    SetIoError(ctx, true);
    Finish(ctx);
    return;
  }
  if (ctx->fua) {
    ctx->io.offset = 0;
    ctx->io.length = 0;
    SubmitIo(ctx, backend::IoOp::kFlush, &LogicalUnit::FlushDone);
    return;
  }
  ctx->task->SetGood();
  Finish(ctx);
}

void LogicalUnit::FlushDone(CommandContext* ctx) {
  if (ctx->io.result != 0) {
    SetIoError(ctx, true);
  } else {
    ctx->task->SetGood();
  }
  Finish(ctx);
}

// VERIFY (SBC-3 §5.34): BYTCHK 0 checks the range only (the backend reports unreadable media on
// reads); 1 compares Data-Out with the medium; 3 compares one block with every block.
void LogicalUnit::StartVerify(Task* task, uint64_t lba, uint64_t blocks, uint8_t bytchk) {
  SetTransferLength(task, bytchk == 1 ? blocks * block_size_ : (bytchk == 3 ? block_size_ : 0));
  if (bytchk == 2) {
    SetInvalidFieldInCdb(task, 1, 2);
    task->Complete();
    return;
  }
  if (bytchk != 0 && blocks > config_.max_transfer_bytes / block_size_) {
    SetInvalidFieldInCdb(task, 0);
    task->Complete();
    return;
  }
  if (!CheckRange(task, lba, blocks)) {
    task->Complete();
    return;
  }
  if (bytchk == 0 || blocks == 0) {
    task->SetGood();
    task->Complete();
    return;
  }
  const uint64_t needed = bytchk == 1 ? blocks * block_size_ : block_size_;
  if (task->data_out.size() < needed) {
    SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInInformationUnit);
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kRead);
  ctx->lba = lba;
  ctx->blocks = blocks;
  ctx->stage = bytchk;
  ctx->scratch.resize(std::max<size_t>(
      ctx->scratch.size(), std::min<uint64_t>(kVerifyChunkBytes, blocks * block_size_)));
  VerifyChunk(ctx);
}

void LogicalUnit::VerifyChunk(CommandContext* ctx) {
  const uint64_t chunk_blocks =
      std::min<uint64_t>(ctx->blocks - ctx->cursor, kVerifyChunkBytes / block_size_);
  ctx->io.offset = (ctx->lba + ctx->cursor) * block_size_;
  ctx->io.read_buffer = std::span<uint8_t>(ctx->scratch.data(), chunk_blocks * block_size_);
  SubmitIo(ctx, backend::IoOp::kRead, &LogicalUnit::VerifyChunkDone);
}

void LogicalUnit::VerifyChunkDone(CommandContext* ctx) {
  Task* task = ctx->task;
  if (ctx->io.result != 0) {
    SetIoError(ctx, false);
    Finish(ctx);
    return;
  }
  const uint64_t chunk_bytes = ctx->io.read_buffer.size();
  for (uint64_t i = 0; i < chunk_bytes; ++i) {
    const uint64_t offset = ctx->cursor * block_size_ + i;
    const uint8_t expected =
        ctx->stage == 1 ? task->data_out[offset] : task->data_out[offset % block_size_];
    if (ctx->scratch[i] != expected) {
      SetSenseWithInformation(task, SenseKey::kMiscompare, kAscMiscompareDuringVerify,
                              static_cast<uint32_t>(offset));
      Finish(ctx);
      return;
    }
  }
  ctx->cursor += chunk_bytes / block_size_;
  if (ctx->cursor < ctx->blocks) {
    VerifyChunk(ctx);
    return;
  }
  task->SetGood();
  Finish(ctx);
}

// SYNCHRONIZE CACHE (SBC-3 §5.22/§5.23): flushes the whole backend; NUMBER OF LOGICAL BLOCKS 0
// means "to the end of the medium".
void LogicalUnit::StartSynchronizeCache(Task* task, uint64_t lba, uint64_t blocks) {
  const uint64_t capacity = BlockCount();
  if (lba > capacity || (blocks != 0 && !CheckRange(task, lba, blocks))) {
    if (lba > capacity) {
      SetSense(task, SenseKey::kIllegalRequest, kAscLbaOutOfRange);
    }
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kOther);
  SubmitIo(ctx, backend::IoOp::kFlush, &LogicalUnit::FlushDone);
}

}  // namespace vios::scsi
