// file_backend_bench: 4 KiB random read and write through FileBackend at a fixed queue depth, in
// both I/O modes (O_DIRECT for aligned buffers vs. buffered), to choose FileBackend's default.
//
//   file_backend_bench [path] [seconds] [queue_depth]
// The file (default /var/tmp/vios-bench.img, 1 GiB) is created, filled, and removed afterwards.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "node-agent/backend/file_backend.h"

namespace {

using vios::backend::FileBackend;
using vios::backend::FileBackendOptions;
using vios::backend::FileIoMode;
using vios::backend::IoCompletion;
using vios::backend::IoOp;
using vios::backend::IoRequest;

constexpr uint64_t kFileSize = 1ull << 30;
constexpr size_t kBlock = 4096;

class Load final : public IoCompletion {
 public:
  Load(FileBackend* b, IoOp op, int depth, double seconds)
      : backend_(b), op_(op), depth_(depth), seconds_(seconds), requests_(depth), rng_(1) {
    buffers_ = static_cast<uint8_t*>(std::aligned_alloc(4096, kBlock * depth));
    std::memset(buffers_, 0x5A, kBlock * depth);
  }
  ~Load() override { std::free(buffers_); }

  double Run() {
    start_ = std::chrono::steady_clock::now();
    deadline_ = start_ + std::chrono::microseconds(static_cast<int64_t>(seconds_ * 1e6));
    for (int i = 0; i < depth_; ++i) {
      requests_[i].completion = this;
      Issue(&requests_[i], i);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return static_cast<double>(completed_.load()) / elapsed;
  }

  void IoDone(IoRequest* r) override {
    if (r->result != 0) {
      std::fprintf(stderr, "I/O error %d\n", r->result);
    }
    completed_.fetch_add(1);
    if (std::chrono::steady_clock::now() < deadline_) {
      Issue(r, static_cast<int>(r - requests_.data()));
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (--outstanding_ == 0) {
      cv_.notify_all();
    }
  }

 private:
  void Issue(IoRequest* r, int slot) {
    uint64_t block;
    {
      std::lock_guard<std::mutex> lock(rng_mutex_);
      block = rng_() % (kFileSize / kBlock);
    }
    r->op = op_;
    r->offset = block * kBlock;
    if (op_ == IoOp::kRead) {
      r->read_buffer = {buffers_ + slot * kBlock, kBlock};
    } else {
      r->write_buffer = {buffers_ + slot * kBlock, kBlock};
    }
    backend_->Submit(r);
  }

  FileBackend* backend_;
  IoOp op_;
  int depth_;
  double seconds_;
  std::vector<IoRequest> requests_;
  uint8_t* buffers_;
  std::mt19937_64 rng_;
  std::mutex rng_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int outstanding_ = 0;
  std::atomic<uint64_t> completed_{0};
  std::chrono::steady_clock::time_point start_, deadline_;

 public:
  void SetOutstanding() { outstanding_ = depth_; }
};

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "/var/tmp/vios-bench.img";
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;
  const int depth = argc > 3 ? std::atoi(argv[3]) : 32;
  {
    // Fill the file so reads hit allocated blocks.
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    std::vector<uint8_t> chunk(1 << 20, 0xA5);
    for (uint64_t off = 0; off < kFileSize; off += chunk.size()) {
      if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) return 1;
    }
    ::fsync(fd);
    ::close(fd);
  }
  for (FileIoMode mode : {FileIoMode::kAuto, FileIoMode::kBuffered}) {
    FileBackendOptions o;
    o.path = path;
    o.mode = mode;
    std::string error;
    auto b = FileBackend::Open(o, &error);
    if (!b) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    for (IoOp op : {IoOp::kRead, IoOp::kWrite}) {
      Load load(b.get(), op, depth, seconds);
      load.SetOutstanding();
      const double iops = load.Run();
      std::printf("mode=%s op=%s qd=%d iops=%.0f\n",
                  mode == FileIoMode::kAuto ? (b->direct_io() ? "direct" : "auto") : "buffered",
                  op == IoOp::kRead ? "randread" : "randwrite", depth, iops);
    }
  }
  ::unlink(path.c_str());
  return 0;
}
