// Volume over extents of real files (FileBackend, io_uring): translation, splitting, errors.
#include "node-agent/pool/volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>

#include "node-agent/backend/backend_test_util.h"
#include "node-agent/backend/file_backend.h"
#include "node-agent/backend/memory_backend.h"
#include "node-agent/pool/pool.h"
#include "node-agent/pool/zero_extents.h"

namespace vios::pool {
namespace {

using backend::IoOp;
using backend::testing::RunIo;

constexpr uint64_t kMiB = 1 << 20;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i / 512 + i * 13);
  return v;
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vios-volume-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    pool_ = std::make_unique<Pool>("pool0", kMiB);
    for (const char* name : {"a", "b"}) {
      backend::FileBackendOptions o;
      o.path = dir_ + "/" + name + ".img";
      o.size_bytes = 8 * kMiB;
      o.create = true;
      std::string error;
      auto b = backend::FileBackend::Open(o, &error);
      ASSERT_NE(b, nullptr) << error;
      ASSERT_TRUE(pool_->AddBackend(name, std::move(b), &error)) << error;
    }
  }
  void TearDown() override {
    pool_.reset();
    ::unlink((dir_ + "/a.img").c_str());
    ::unlink((dir_ + "/b.img").c_str());
    ::rmdir(dir_.c_str());
  }
  std::vector<uint8_t> ReadFile(const std::string& name, uint64_t offset, size_t n) {
    std::vector<uint8_t> v(n);
    const int fd = ::open((dir_ + "/" + name + ".img").c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, v.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
    return v;
  }
  std::string dir_;
  std::unique_ptr<Pool> pool_;
};

TEST_F(VolumeTest, SpanningWriteLandsAtTranslatedOffsets) {
  // Volume: a[2,3) MiB, b[5,7) MiB, a[0,1) MiB -> 4 MiB.
  std::string error;
  auto v = pool_->OpenVolume(
      "pvc-1", {{"a", 2 * kMiB, kMiB}, {"b", 5 * kMiB, 2 * kMiB}, {"a", 0, kMiB}}, &error);
  ASSERT_NE(v, nullptr) << error;
  EXPECT_EQ(v->SizeBytes(), 4 * kMiB);
  // 1 MiB + 4 KiB... write straddling all three extents: [kMiB - 4096, 3 MiB + 4096).
  const uint64_t start = kMiB - 4096;
  auto data = Pattern(2 * kMiB + 8192, 3);
  ASSERT_EQ(RunIo(*v, IoOp::kWrite, start, data), 0);
  ASSERT_EQ(RunIo(*v, IoOp::kFlush, 0, {}), 0);
  EXPECT_EQ(ReadFile("a", 3 * kMiB - 4096, 4096),
            std::vector<uint8_t>(data.begin(), data.begin() + 4096));
  EXPECT_EQ(ReadFile("b", 5 * kMiB, 2 * kMiB),
            std::vector<uint8_t>(data.begin() + 4096, data.begin() + 4096 + 2 * kMiB));
  EXPECT_EQ(ReadFile("a", 0, 4096), std::vector<uint8_t>(data.end() - 4096, data.end()));
  std::vector<uint8_t> back(data.size());
  ASSERT_EQ(RunIo(*v, IoOp::kRead, start, back), 0);
  EXPECT_EQ(back, data);
  // Counted per backend path through the routers.
  EXPECT_EQ(pool_->Backend("a")->local_path()->counters().writes.load(), 2u);
  EXPECT_EQ(pool_->Backend("b")->local_path()->counters().writes.load(), 1u);
}

TEST_F(VolumeTest, DiscardAndWriteZeroesSplitToo) {
  std::string error;
  auto v = pool_->OpenVolume("pvc-2", {{"a", 0, kMiB}, {"b", 0, kMiB}}, &error);
  ASSERT_NE(v, nullptr);
  auto data = Pattern(2 * kMiB, 1);
  ASSERT_EQ(RunIo(*v, IoOp::kWrite, 0, data), 0);
  ASSERT_EQ(RunIo(*v, IoOp::kDiscard, 0, {}, kMiB + 512 * 1024), 0);
  std::vector<uint8_t> back(2 * kMiB);
  ASSERT_EQ(RunIo(*v, IoOp::kRead, 0, back), 0);
  EXPECT_EQ(std::vector<uint8_t>(back.begin(), back.begin() + kMiB + 512 * 1024),
            std::vector<uint8_t>(kMiB + 512 * 1024, 0));
  EXPECT_EQ(back[kMiB + 512 * 1024], data[kMiB + 512 * 1024]);
}

TEST_F(VolumeTest, OutOfRangeAndBadExtentsRejected) {
  std::string error;
  auto v = pool_->OpenVolume("pvc-3", {{"a", 0, kMiB}}, &error);
  ASSERT_NE(v, nullptr);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(RunIo(*v, IoOp::kRead, kMiB - 512, buf), -EINVAL);
  EXPECT_EQ(pool_->OpenVolume("x", {{"c", 0, kMiB}}, &error), nullptr);
  EXPECT_EQ(pool_->OpenVolume("x", {{"a", 7 * kMiB, 2 * kMiB}}, &error), nullptr);
  EXPECT_EQ(pool_->OpenVolume("x", {{"a", 100, kMiB}}, &error), nullptr);
}

TEST_F(VolumeTest, ExtendGrowsTheVolume) {
  std::string error;
  auto v = pool_->OpenVolume("pvc-4", {{"a", 0, kMiB}}, &error);
  ASSERT_TRUE(pool_->ExtendVolume(v.get(), {{"b", 3 * kMiB, kMiB}}, &error)) << error;
  EXPECT_EQ(v->SizeBytes(), 2 * kMiB);
  auto data = Pattern(4096, 8);
  ASSERT_EQ(RunIo(*v, IoOp::kWrite, kMiB, data), 0);
  ASSERT_EQ(RunIo(*v, IoOp::kFlush, 0, {}), 0);
  EXPECT_EQ(ReadFile("b", 3 * kMiB, 4096), data);
  EXPECT_EQ(v->extents().size(), 2u);
}

TEST_F(VolumeTest, ZeroExtentsClearsData) {
  std::string error;
  auto v = pool_->OpenVolume("pvc-5", {{"a", kMiB, kMiB}, {"b", 0, kMiB}}, &error);
  auto data = Pattern(2 * kMiB, 5);
  ASSERT_EQ(RunIo(*v, IoOp::kWrite, 0, data), 0);
  ASSERT_TRUE(ZeroExtents(*pool_, v->extents(), &error)) << error;
  EXPECT_EQ(ReadFile("a", kMiB, kMiB), std::vector<uint8_t>(kMiB, 0));
  EXPECT_EQ(ReadFile("b", 0, kMiB), std::vector<uint8_t>(kMiB, 0));
}

TEST(VolumeMemoryTest, FirstErrorWinsAndFlushReachesEveryBackend) {
  Pool pool("p", 4096);
  auto a = std::make_unique<backend::MemoryBackend>(kMiB);
  auto b = std::make_unique<backend::MemoryBackend>(kMiB);
  backend::MemoryBackend* ra = a.get();
  backend::MemoryBackend* rb = b.get();
  std::string error;
  ASSERT_TRUE(pool.AddBackend("a", std::move(a), &error));
  ASSERT_TRUE(pool.AddBackend("b", std::move(b), &error));
  auto v = pool.OpenVolume("v", {{"a", 0, 8192}, {"b", 0, 8192}, {"a", 8192, 8192}}, &error);
  ASSERT_NE(v, nullptr) << error;
  rb->FailNext(-EIO);
  std::vector<uint8_t> buf(24576, 1);
  EXPECT_EQ(RunIo(*v, IoOp::kWrite, 0, buf), -EIO);
  EXPECT_EQ(ra->count(IoOp::kWrite), 2u);  // the other parts still ran
  EXPECT_EQ(RunIo(*v, IoOp::kWrite, 0, buf), 0);
  ASSERT_EQ(RunIo(*v, IoOp::kFlush, 0, {}), 0);
  EXPECT_EQ(ra->count(IoOp::kFlush), 1u);
  EXPECT_EQ(rb->count(IoOp::kFlush), 1u);
  // A block size mismatch is refused.
  EXPECT_FALSE(pool.AddBackend("c", std::make_unique<backend::MemoryBackend>(kMiB, 4096), &error));
}

}  // namespace
}  // namespace vios::pool
