// sync_block_device_test: unaligned reads, writes and zeroing over a block device match a
// byte-for-byte reference model, and never send a misaligned request to the device.
#include "node-agent/fuse/sync_block_device.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "node-agent/fuse/test_file_device.h"

namespace vios::fuse {
namespace {

std::string TempPath(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name + "-" + std::to_string(getpid());
}

TEST(SyncBlockDeviceTest, RandomUnalignedOpsMatchReferenceModel) {
  constexpr uint64_t kSize = 256 * 1024;
  std::string path = TempPath("vios-sync-bd");
  testing::TestFileDevice dev(path, kSize, 512);
  ASSERT_TRUE(dev.ok());
  SyncBlockDevice io(&dev);
  std::vector<uint8_t> model(kSize, 0);
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf;
  for (int i = 0; i < 2000; ++i) {
    uint64_t off = rng() % kSize;
    uint64_t len = 1 + rng() % std::min<uint64_t>(9000, kSize - off);
    switch (rng() % 4) {
      case 0:
      case 1: {
        buf.resize(len);
        for (auto& b : buf) {
          b = static_cast<uint8_t>(rng());
        }
        ASSERT_EQ(io.WriteAt(off, buf), 0);
        std::copy(buf.begin(), buf.end(), model.begin() + static_cast<long>(off));
        break;
      }
      case 2: {
        ASSERT_EQ(io.ZeroRange(off, len, rng() % 2 == 0), 0);
        std::fill_n(model.begin() + static_cast<long>(off), len, 0);
        break;
      }
      default: {
        buf.resize(len);
        ASSERT_EQ(io.ReadAt(off, buf), 0);
        ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + static_cast<long>(off)))
            << "read mismatch at " << off << "+" << len << " after " << i << " ops";
      }
    }
  }
  std::vector<uint8_t> all(kSize);
  ASSERT_EQ(io.ReadAt(0, all), 0);
  EXPECT_EQ(all, model);
  EXPECT_EQ(io.Flush(), 0);
  EXPECT_EQ(dev.flushes(), 1u);
  EXPECT_GT(dev.discards(), 0u);
  EXPECT_EQ(dev.misaligned(), 0u);
  ::unlink(path.c_str());
}

TEST(SyncBlockDeviceTest, RejectsRangesOutsideTheDevice) {
  std::string path = TempPath("vios-sync-bd-range");
  testing::TestFileDevice dev(path, 4096, 512);
  ASSERT_TRUE(dev.ok());
  SyncBlockDevice io(&dev);
  std::vector<uint8_t> buf(512);
  EXPECT_EQ(io.ReadAt(4000, buf), -EINVAL);
  EXPECT_EQ(io.WriteAt(UINT64_MAX - 10, buf), -EINVAL);
  EXPECT_EQ(io.ZeroRange(4096, 1, true), -EINVAL);
  EXPECT_EQ(io.ReadAt(3584, buf), 0);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace vios::fuse
