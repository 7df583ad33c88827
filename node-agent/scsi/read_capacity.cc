// READ CAPACITY(10/16) and GET LBA STATUS (SBC-3 §5.15, §5.16, §5.7).
//
// GET LBA STATUS reads a window from the starting LBA and reports runs of all-zero blocks as
// deallocated: with LBPRZ=1 a deallocated block reads as zeroes, so an all-zero block is
// indistinguishable from a deallocated one, and this needs no allocation map from the backend.
#include <algorithm>
#include <array>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr uint64_t kLbaStatusWindowBytes = 1u << 20;
constexpr size_t kMaxLbaStatusDescriptors = 64;

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

void LogicalUnit::ReadCapacity10(Task* task) {
  const uint8_t* cdb = task->cdb.data();
  // SBC-3 §5.15: with PMI zero the LOGICAL BLOCK ADDRESS field must be zero.
  if ((cdb[8] & 0x01) == 0 && wire::Load32(cdb + 2) != 0) {
    SetInvalidFieldInCdb(task, 2);
    task->Complete();
    return;
  }
  std::array<uint8_t, 8> data{};
  const uint64_t capacity = BlockCount();
  const uint64_t last = capacity == 0 ? 0 : capacity - 1;
  wire::Store32(data.data(), last > 0xFFFFFFFFull ? 0xFFFFFFFFu : static_cast<uint32_t>(last));
  wire::Store32(data.data() + 4, block_size_);
  Respond(task, data, 8);
  task->Complete();
}

void LogicalUnit::ReadCapacity16(Task* task) {
  const uint8_t* cdb = task->cdb.data();
  const uint32_t allocation_length = wire::Load32(cdb + 10);
  std::array<uint8_t, 32> data{};
  const uint64_t capacity = BlockCount();
  wire::Store64(data.data(), capacity == 0 ? 0 : capacity - 1);
  wire::Store32(data.data() + 8, block_size_);
  uint8_t exponent = 0;
  if (config_.physical_block_bytes > block_size_) {
    while ((block_size_ << (exponent + 1)) <= config_.physical_block_bytes) {
      ++exponent;
    }
  }
  data[13] = exponent;  // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
  if (device_->SupportsDiscard()) {
    data[14] = 0x80 | 0x40;  // LBPME, LBPRZ (SBC-3 §5.16.2).
  }
  Respond(task, data, allocation_length);
  task->Complete();
}

void LogicalUnit::GetLbaStatus(Task* task) {
  const uint8_t* cdb = task->cdb.data();
  const uint64_t lba = wire::Load64(cdb + 2);
  const uint32_t allocation_length = wire::Load32(cdb + 10);
  const uint64_t capacity = BlockCount();
  if (lba >= capacity) {
    SetSense(task, SenseKey::kIllegalRequest, kAscLbaOutOfRange);
    task->Complete();
    return;
  }
  if (allocation_length == 0) {
    task->SetGood();
    task->Complete();
    return;
  }
  if (!device_->SupportsDiscard()) {
    // Fully provisioned: one mapped descriptor to the end of the medium.
    std::array<uint8_t, 24> data{};
    wire::Store32(data.data(), 20);
    wire::Store64(data.data() + 8, lba);
    wire::Store32(data.data() + 16,
                  static_cast<uint32_t>(std::min<uint64_t>(capacity - lba, 0xFFFFFFFFull)));
    Respond(task, data, allocation_length);
    task->Complete();
    return;
  }
  CommandContext* ctx = AcquireContext(task, backend::IoCounters::Kind::kOther);
  ctx->lba = lba;
  ctx->blocks = std::min<uint64_t>(capacity - lba, kLbaStatusWindowBytes / block_size_);
  ctx->scratch.resize(ctx->blocks * block_size_);
  ctx->io.offset = lba * block_size_;
  ctx->io.read_buffer = std::span<uint8_t>(ctx->scratch.data(), ctx->blocks * block_size_);
  SubmitIo(ctx, backend::IoOp::kRead, &LogicalUnit::GetLbaStatusRead);
}

void LogicalUnit::GetLbaStatusRead(CommandContext* ctx) {
  Task* task = ctx->task;
  if (ctx->io.result != 0) {
    SetIoError(ctx, false);
    Finish(ctx);
    return;
  }
  std::array<uint8_t, 8 + 16 * kMaxLbaStatusDescriptors> data{};
  size_t count = 0;
  uint64_t run_start = 0;
  bool run_zero = AllZero(ctx->scratch.data(), block_size_);
  for (uint64_t b = 1; b <= ctx->blocks; ++b) {
    const bool end = b == ctx->blocks;
    const bool zero = end ? !run_zero : AllZero(ctx->scratch.data() + b * block_size_, block_size_);
    if (zero == run_zero && !end) {
      continue;
    }
    uint8_t* d = data.data() + 8 + 16 * count;
    wire::Store64(d, ctx->lba + run_start);
    wire::Store32(d + 8, static_cast<uint32_t>(b - run_start));
    d[12] = run_zero ? 0x01 : 0x00;  // PROVISIONING STATUS: deallocated / mapped.
    ++count;
    run_start = b;
    run_zero = zero;
    if (count == kMaxLbaStatusDescriptors) {
      break;
    }
  }
  const size_t length = 8 + 16 * count;
  wire::Store32(data.data(), static_cast<uint32_t>(length - 4));
  Respond(task, std::span<const uint8_t>(data.data(), length), wire::Load32(task->cdb.data() + 10));
  ctx->blocks = 0;
  Finish(ctx);
}

}  // namespace vios::scsi
