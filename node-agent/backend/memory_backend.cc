// MemoryBackend: RAM-backed BlockDevice (memory_backend.h).
#include "node-agent/backend/memory_backend.h"

#include <cerrno>
#include <cstring>

namespace vios::backend {

MemoryBackend::MemoryBackend(uint64_t size_bytes, uint32_t block_size, bool supports_discard)
    : data_(size_bytes), block_size_(block_size), supports_discard_(supports_discard) {}

uint64_t MemoryBackend::SizeBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return data_.size();
}

void MemoryBackend::Resize(uint64_t size_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  data_.resize(size_bytes);
}

void MemoryBackend::FailNext(int result) {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_next_ = result;
}

uint64_t MemoryBackend::count(IoOp op) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_[static_cast<int>(op)];
}

std::vector<uint8_t> MemoryBackend::Read(uint64_t offset, uint64_t length) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::vector<uint8_t>(data_.begin() + static_cast<ptrdiff_t>(offset),
                              data_.begin() + static_cast<ptrdiff_t>(offset + length));
}

void MemoryBackend::Submit(IoRequest* request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_[static_cast<int>(request->op)];
    const uint64_t length = request->ByteLength();
    if (fail_next_ != 0) {
      request->result = fail_next_;
      fail_next_ = 0;
    } else if (request->op != IoOp::kFlush &&
               (request->offset > data_.size() || length > data_.size() - request->offset)) {
      request->result = -EINVAL;
    } else {
      request->result = 0;
      uint8_t* base = data_.data() + request->offset;
      switch (request->op) {
        case IoOp::kRead:
          std::memcpy(request->read_buffer.data(), base, length);
          break;
        case IoOp::kWrite:
          std::memcpy(base, request->write_buffer.data(), length);
          break;
        case IoOp::kWriteZeroes:
        case IoOp::kDiscard:
          std::memset(base, 0, length);
          break;
        case IoOp::kFlush:
          break;
      }
    }
  }
  request->completion->IoDone(request);
}

}  // namespace vios::backend
