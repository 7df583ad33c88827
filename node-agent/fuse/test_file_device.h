// TestFileDevice: a minimal pread/pwrite BlockDevice over a file, for the FUSE export tests only.
//
// Completes each request on its own worker thread (not inside Submit), so the tests exercise the
// asynchronous completion path the real backends use. The production file backend lives in
// node-agent/backend; this one exists so these tests do not depend on it.
#pragma once

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "node-agent/backend/block_device.h"

namespace vios::fuse::testing {

class TestFileDevice final : public backend::BlockDevice {
 public:
  TestFileDevice(const std::string& path, uint64_t size, uint32_t block_size = 512)
      : path_(path), size_(size), block_size_(block_size) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    worker_ = std::thread([this] { Work(); });
  }
  ~TestFileDevice() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  bool ok() const { return fd_ >= 0; }
  uint64_t SizeBytes() const override { return size_; }
  uint32_t BlockSize() const override { return block_size_; }
  bool SupportsDiscard() const override { return true; }
  std::string Describe() const override { return "testfile:" + path_; }
  void Submit(backend::IoRequest* request) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(request);
    }
    cv_.notify_one();
  }
  uint64_t flushes() const { return flushes_.load(); }
  uint64_t discards() const { return discards_.load(); }
  uint64_t misaligned() const { return misaligned_.load(); }

 private:
  void Work() {
    for (;;) {
      backend::IoRequest* r = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) {
          return;
        }
        r = queue_.front();
        queue_.pop_front();
      }
      r->result = Execute(*r);
      r->completion->IoDone(r);
    }
  }

  int Execute(const backend::IoRequest& r) {
    uint64_t len = r.ByteLength();
    if (r.op != backend::IoOp::kFlush &&
        (r.offset % block_size_ != 0 || len % block_size_ != 0 || r.offset + len > size_)) {
      ++misaligned_;  // The BlockDevice contract: whole blocks inside the device.
      return -EINVAL;
    }
    auto off = static_cast<off_t>(r.offset);
    switch (r.op) {
      case backend::IoOp::kRead:
        return ::pread(fd_, r.read_buffer.data(), len, off) == static_cast<ssize_t>(len) ? 0 : -EIO;
      case backend::IoOp::kWrite:
        return ::pwrite(fd_, r.write_buffer.data(), len, off) == static_cast<ssize_t>(len) ? 0
                                                                                           : -EIO;
      case backend::IoOp::kFlush:
        ++flushes_;
        return ::fdatasync(fd_) == 0 ? 0 : -errno;
      case backend::IoOp::kDiscard:
        ++discards_;
        return ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                           static_cast<off_t>(len)) == 0
                   ? 0
                   : -errno;
      case backend::IoOp::kWriteZeroes:
        return ::fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off,
                           static_cast<off_t>(len)) == 0
                   ? 0
                   : -errno;
    }
    return -EINVAL;
  }

  std::string path_;
  uint64_t size_;
  uint32_t block_size_;
  int fd_ = -1;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<backend::IoRequest*> queue_;
  bool stop_ = false;
  std::thread worker_;
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> discards_{0};
  std::atomic<uint64_t> misaligned_{0};
};

}  // namespace vios::fuse::testing
