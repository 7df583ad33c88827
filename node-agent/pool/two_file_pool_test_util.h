// TwoFilePool: a test pool "pool0" with 1 MiB extents over two sparse 4 MiB files, "a" and "b",
// in a fresh directory under /tmp, and a volume whose two extents cross the files (b's second MiB,
// then a's third), so I/O across LBA 2048 (512-byte blocks) splits between backends. Real files
// and real io_uring: for tests of the layers above the pool.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "node-agent/backend/file_backend.h"
#include "node-agent/pool/pool.h"

namespace vios::pool::testing {

class TwoFilePool {
 public:
  static constexpr uint64_t kMiB = 1 << 20;

  // Open creates the files, the pool and the volume; check with ASSERT_NO_FATAL_FAILURE.
  void Open(const std::string& volume_id) {
    char dir[] = "/tmp/vios-pool-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    pool_ = std::make_unique<Pool>("pool0", kMiB);
    for (const char* name : {"a", "b"}) {
      backend::FileBackendOptions o;
      o.path = dir_ + "/" + name + ".img";
      o.size_bytes = 4 * kMiB;
      o.create = true;
      std::string error;
      ASSERT_TRUE(pool_->AddBackend(name, backend::FileBackend::Open(o, &error), &error)) << error;
    }
    std::string error;
    volume_ = pool_->OpenVolume(volume_id, {{"b", kMiB, kMiB}, {"a", 2 * kMiB, kMiB}}, &error);
    ASSERT_NE(volume_, nullptr) << error;
  }
  // Close releases the volume and the pool and removes the files.
  void Close() {
    volume_.reset();
    pool_.reset();
    if (dir_.empty()) return;
    ::unlink((dir_ + "/a.img").c_str());
    ::unlink((dir_ + "/b.img").c_str());
    ::rmdir(dir_.c_str());
    dir_.clear();
  }

  Pool* pool() const { return pool_.get(); }
  Volume* volume() const { return volume_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<Volume> volume_;
};

}  // namespace vios::pool::testing
