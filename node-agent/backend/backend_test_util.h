// Test helpers for BlockDevice users: a completion that can be waited for.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>

#include "node-agent/backend/block_device.h"

namespace vios::backend::testing {

// Waiter counts IoDone calls; Wait blocks until `count` have arrived (or 10 s pass).
class Waiter final : public IoCompletion {
 public:
  void IoDone(IoRequest* request) override {
    (void)request;
    std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    cv_.notify_all();
  }
  bool Wait(uint64_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done_ >= count; });
  }
  uint64_t done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t done_ = 0;
};

// RunIo submits one request and waits for it; returns its result.
inline int RunIo(BlockDevice& device, IoOp op, uint64_t offset, std::span<uint8_t> buffer,
                 uint64_t length = 0) {
  Waiter waiter;
  IoRequest request;
  request.op = op;
  request.offset = offset;
  request.length = length;
  if (op == IoOp::kRead) {
    request.read_buffer = buffer;
  } else {
    request.write_buffer = buffer;
  }
  request.completion = &waiter;
  device.Submit(&request);
  if (!waiter.Wait(1)) {
    return -1000;
  }
  return request.result;
}

}  // namespace vios::backend::testing
