// SyncBlockDevice: the blocking adapter and unaligned-access handling (see sync_block_device.h).
#include "node-agent/fuse/sync_block_device.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

namespace vios::fuse {
namespace {

// Waiter lives on the submitting thread's stack. IoDone notifies while holding the mutex, so the
// waiter cannot return (and destroy the condition variable) before notify_one has finished.
class Waiter final : public backend::IoCompletion {
 public:
  void IoDone(backend::IoRequest* /*request*/) override {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    cv_.notify_one();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

// Bounce returns this thread's scratch buffer, grown to at least size bytes (grows rarely; a
// FUSE worker serves many requests, so steady state does not allocate).
std::span<uint8_t> Bounce(size_t size) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < size) {
    buffer.resize(size);
  }
  return std::span<uint8_t>(buffer.data(), size);
}

}  // namespace

SyncBlockDevice::SyncBlockDevice(backend::BlockDevice* device)
    : device_(device), block_size_(device->BlockSize()) {}

int SyncBlockDevice::Execute(backend::IoRequest* request) {
  Waiter waiter;
  request->completion = &waiter;
  request->result = 0;
  device_->Submit(request);
  waiter.Wait();
  return request->result;
}

int SyncBlockDevice::BlockOp(backend::IoOp op, uint64_t offset, std::span<uint8_t> read,
                             std::span<const uint8_t> write, uint64_t length) {
  backend::IoRequest req;
  req.op = op;
  req.offset = offset;
  req.read_buffer = read;
  req.write_buffer = write;
  req.length = length;
  return Execute(&req);
}

int SyncBlockDevice::Flush() { return BlockOp(backend::IoOp::kFlush, 0, {}, {}, 0); }

int SyncBlockDevice::ReadAt(uint64_t offset, std::span<uint8_t> buffer) {
  if (offset > SizeBytes() || buffer.size() > SizeBytes() - offset) {
    return -EINVAL;
  }
  if (buffer.empty()) {
    return 0;
  }
  uint64_t bs = block_size_;
  if (offset % bs == 0 && buffer.size() % bs == 0) {
    return BlockOp(backend::IoOp::kRead, offset, buffer, {}, 0);
  }
  uint64_t start = offset / bs * bs;
  uint64_t end = (offset + buffer.size() + bs - 1) / bs * bs;
  std::span<uint8_t> bounce = Bounce(end - start);
  int rc = BlockOp(backend::IoOp::kRead, start, bounce, {}, 0);
  if (rc == 0) {
    std::memcpy(buffer.data(), bounce.data() + (offset - start), buffer.size());
  }
  return rc;
}

int SyncBlockDevice::Patch(uint64_t offset, std::span<const uint8_t> data, uint64_t length) {
  uint64_t bs = block_size_;
  uint64_t start = offset / bs * bs;
  uint64_t end = (offset + length + bs - 1) / bs * bs;
  std::span<uint8_t> bounce = Bounce(end - start);
  int rc = BlockOp(backend::IoOp::kRead, start, bounce, {}, 0);
  if (rc != 0) {
    return rc;
  }
  if (data.empty()) {
    std::memset(bounce.data() + (offset - start), 0, length);
  } else {
    std::memcpy(bounce.data() + (offset - start), data.data(), length);
  }
  return BlockOp(backend::IoOp::kWrite, start, {}, bounce, 0);
}

int SyncBlockDevice::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (offset > SizeBytes() || data.size() > SizeBytes() - offset) {
    return -EINVAL;
  }
  if (data.empty()) {
    return 0;
  }
  uint64_t bs = block_size_;
  if (offset % bs == 0 && data.size() % bs == 0) {
    std::shared_lock<std::shared_mutex> lock(rmw_mutex_);
    return BlockOp(backend::IoOp::kWrite, offset, {}, data, 0);
  }
  std::unique_lock<std::shared_mutex> lock(rmw_mutex_);
  return Patch(offset, data, data.size());
}

int SyncBlockDevice::ZeroRange(uint64_t offset, uint64_t length, bool deallocate) {
  if (offset > SizeBytes() || length > SizeBytes() - offset) {
    return -EINVAL;
  }
  if (length == 0) {
    return 0;
  }
  uint64_t bs = block_size_;
  uint64_t first_full = (offset + bs - 1) / bs * bs;
  uint64_t end = offset + length;
  uint64_t last_full = end / bs * bs;
  std::unique_lock<std::shared_mutex> lock(rmw_mutex_);
  if (first_full >= last_full) {
    // Within one or two partial blocks: no whole block to deallocate.
    return Patch(offset, {}, length);
  }
  if (offset < first_full) {
    if (int rc = Patch(offset, {}, first_full - offset); rc != 0) {
      return rc;
    }
  }
  if (last_full < end) {
    if (int rc = Patch(last_full, {}, end - last_full); rc != 0) {
      return rc;
    }
  }
  backend::IoOp op = deallocate && device_->SupportsDiscard() ? backend::IoOp::kDiscard
                                                              : backend::IoOp::kWriteZeroes;
  return BlockOp(op, first_full, {}, {}, last_full - first_full);
}

}  // namespace vios::fuse
