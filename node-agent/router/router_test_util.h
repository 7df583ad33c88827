// Test helper for router tests: ControlledDevice, a real MemoryBackend whose requests the test
// can hold (a hung path), fail with an errno (a dead path) or pass through.
#pragma once

#include <cerrno>
#include <mutex>
#include <vector>

#include "node-agent/backend/memory_backend.h"

namespace vios::router::testing {

class ControlledDevice final : public backend::BlockDevice {
 public:
  enum class Mode { kPass, kHang, kFail };
  explicit ControlledDevice(uint64_t size) : disk_(size) {}

  uint64_t SizeBytes() const override { return disk_.SizeBytes(); }
  uint32_t BlockSize() const override { return disk_.BlockSize(); }
  bool SupportsDiscard() const override { return true; }
  std::string Describe() const override { return "controlled"; }
  void Submit(backend::IoRequest* request) override {
    Mode mode;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++submitted_;
      mode = mode_;
      if (mode == Mode::kHang) {
        hung_.push_back(request);
        return;
      }
    }
    if (mode == Mode::kFail) {
      request->result = fail_errno_;
      request->completion->IoDone(request);
      return;
    }
    disk_.Submit(request);
  }
  void Set(Mode mode, int fail_errno = -ENOTCONN) {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = mode;
    fail_errno_ = fail_errno;
  }
  // Release completes the hung requests: executed on the disk, or failed with result.
  void Release(int result = 0) {
    std::vector<backend::IoRequest*> hung;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hung.swap(hung_);
    }
    for (backend::IoRequest* r : hung) {
      if (result == 0) {
        disk_.Submit(r);
      } else {
        r->result = result;
        r->completion->IoDone(r);
      }
    }
  }
  size_t hung() {
    std::lock_guard<std::mutex> lock(mu_);
    return hung_.size();
  }
  uint64_t submitted() {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_;
  }
  backend::MemoryBackend& disk() { return disk_; }

 private:
  backend::MemoryBackend disk_;
  std::mutex mu_;
  Mode mode_ = Mode::kPass;
  int fail_errno_ = -ENOTCONN;
  std::vector<backend::IoRequest*> hung_;
  uint64_t submitted_ = 0;
};

}  // namespace vios::router::testing
