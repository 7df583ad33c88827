// FileBackend on a real temporary file with real io_uring.
#include "node-agent/backend/file_backend.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "node-agent/backend/backend_test_util.h"

namespace vios::backend {
namespace {

using testing::RunIo;
using testing::Waiter;

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n) {
    data = static_cast<uint8_t*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096));
  }
  ~AlignedBuffer() { std::free(data); }
  std::span<uint8_t> span() { return {data, size}; }
  uint8_t* data;
  size_t size;
};

class FileBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vios-file-backend-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/pool.img";
  }
  void TearDown() override {
    backend_.reset();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void OpenBackend(uint64_t size, FileIoMode mode = FileIoMode::kAuto) {
    FileBackendOptions o;
    o.path = path_;
    o.size_bytes = size;
    o.create = true;
    o.mode = mode;
    std::string error;
    backend_ = FileBackend::Open(o, &error);
    ASSERT_NE(backend_, nullptr) << error;
  }
  uint64_t AllocatedBytes() {
    struct stat st {};
    ::stat(path_.c_str(), &st);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  std::string dir_;
  std::string path_;
  std::unique_ptr<FileBackend> backend_;
};

TEST_F(FileBackendTest, CreatesSparseFileOfConfiguredSize) {
  OpenBackend(64 << 20);
  EXPECT_EQ(backend_->SizeBytes(), 64u << 20);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);
  EXPECT_LT(AllocatedBytes(), 1u << 20);
  EXPECT_TRUE(backend_->SupportsDiscard());
  EXPECT_TRUE(backend_->direct_io());  // /tmp is ext4 on these machines
}

TEST_F(FileBackendTest, AlignedAndUnalignedBuffersRoundTripCoherently) {
  OpenBackend(8 << 20);
  AlignedBuffer aligned(8192);
  for (size_t i = 0; i < aligned.size; ++i) aligned.data[i] = static_cast<uint8_t>(i * 3);
  ASSERT_EQ(RunIo(*backend_, IoOp::kWrite, 4096, aligned.span()), 0);  // O_DIRECT path
  // Unaligned buffer (odd address): buffered path reads what direct I/O wrote.
  std::vector<uint8_t> raw(8192 + 1);
  std::span<uint8_t> unaligned(raw.data() + 1, 8192);
  ASSERT_EQ(RunIo(*backend_, IoOp::kRead, 4096, unaligned), 0);
  EXPECT_TRUE(std::equal(unaligned.begin(), unaligned.end(), aligned.data));
  // Buffered write of 512 bytes at a 512 offset, then a direct read of the 4 KiB around it.
  std::vector<uint8_t> small(512 + 1, 0xEE);
  ASSERT_EQ(RunIo(*backend_, IoOp::kWrite, 4096 + 512, std::span<uint8_t>(small.data() + 1, 512)),
            0);
  AlignedBuffer back(4096);
  ASSERT_EQ(RunIo(*backend_, IoOp::kRead, 4096, back.span()), 0);
  EXPECT_EQ(back.data[511], static_cast<uint8_t>(511 * 3));
  EXPECT_EQ(back.data[512], 0xEE);
  EXPECT_EQ(back.data[1023], 0xEE);
  EXPECT_EQ(back.data[1024], static_cast<uint8_t>(1024 * 3));
}

TEST_F(FileBackendTest, OutOfRangeAndReadOnlyRejected) {
  OpenBackend(1 << 20);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(RunIo(*backend_, IoOp::kRead, (1 << 20) - 512, buf), -EINVAL);
  EXPECT_EQ(RunIo(*backend_, IoOp::kWrite, 1 << 20, buf), -EINVAL);
  backend_.reset();
  FileBackendOptions o;
  o.path = path_;
  o.read_only = true;
  std::string error;
  auto ro = FileBackend::Open(o, &error);
  ASSERT_NE(ro, nullptr) << error;
  EXPECT_EQ(ro->SizeBytes(), 1u << 20);
  EXPECT_EQ(RunIo(*ro, IoOp::kWrite, 0, buf), -EROFS);
  EXPECT_EQ(RunIo(*ro, IoOp::kRead, 0, buf), 0);
}

TEST_F(FileBackendTest, DiscardDeallocatesAndReadsZeroes) {
  OpenBackend(16 << 20);
  AlignedBuffer data(1 << 20);
  std::memset(data.data, 0x5C, data.size);
  ASSERT_EQ(RunIo(*backend_, IoOp::kWrite, 0, data.span()), 0);
  ASSERT_EQ(RunIo(*backend_, IoOp::kFlush, 0, {}), 0);
  const uint64_t before = AllocatedBytes();
  EXPECT_GE(before, 1u << 20);
  ASSERT_EQ(RunIo(*backend_, IoOp::kDiscard, 0, {}, 512 << 10), 0);
  EXPECT_LE(AllocatedBytes(), before - (512u << 10));
  ASSERT_EQ(RunIo(*backend_, IoOp::kRead, 0, data.span()), 0);
  EXPECT_EQ(data.data[0], 0);
  EXPECT_EQ(data.data[(512 << 10) - 1], 0);
  EXPECT_EQ(data.data[512 << 10], 0x5C);
}

TEST_F(FileBackendTest, WriteZeroesZeroes) {
  OpenBackend(4 << 20);
  AlignedBuffer data(65536);
  std::memset(data.data, 0xA1, data.size);
  ASSERT_EQ(RunIo(*backend_, IoOp::kWrite, 0, data.span()), 0);
  ASSERT_EQ(RunIo(*backend_, IoOp::kWriteZeroes, 512, {}, 1024), 0);
  ASSERT_EQ(RunIo(*backend_, IoOp::kRead, 0, data.span()), 0);
  EXPECT_EQ(data.data[511], 0xA1);
  EXPECT_EQ(data.data[512], 0);
  EXPECT_EQ(data.data[1535], 0);
  EXPECT_EQ(data.data[1536], 0xA1);
}

TEST_F(FileBackendTest, ManyConcurrentRequestsAllComplete) {
  OpenBackend(32 << 20);
  constexpr int kRequests = 512;
  std::vector<AlignedBuffer> buffers;
  buffers.reserve(kRequests);
  std::vector<IoRequest> requests(kRequests);
  Waiter waiter;
  for (int i = 0; i < kRequests; ++i) {
    buffers.emplace_back(4096);
    std::memset(buffers[i].data, i & 0xFF, 4096);
    requests[i].op = IoOp::kWrite;
    requests[i].offset = static_cast<uint64_t>(i) * 4096;
    requests[i].write_buffer = buffers[i].span();
    requests[i].completion = &waiter;
    backend_->Submit(&requests[i]);
  }
  ASSERT_TRUE(waiter.Wait(kRequests));
  for (auto& r : requests) EXPECT_EQ(r.result, 0);
  AlignedBuffer check(4096);
  ASSERT_EQ(RunIo(*backend_, IoOp::kRead, 300 * 4096, check.span()), 0);
  EXPECT_EQ(check.data[100], 300 & 0xFF);
}

TEST_F(FileBackendTest, ResizeChangesReportedSize) {
  OpenBackend(1 << 20);
  std::string error;
  ASSERT_TRUE(backend_->Resize(3 << 20, &error)) << error;
  EXPECT_EQ(backend_->SizeBytes(), 3u << 20);
  std::vector<uint8_t> buf(512, 1);
  EXPECT_EQ(RunIo(*backend_, IoOp::kWrite, (3 << 20) - 512, buf), 0);
}

TEST_F(FileBackendTest, ExistingFileSmallerThanConfiguredSizeIsAnError) {
  OpenBackend(1 << 20);
  backend_.reset();
  FileBackendOptions o;
  o.path = path_;
  o.size_bytes = 2 << 20;
  std::string error;
  EXPECT_EQ(FileBackend::Open(o, &error), nullptr);
  EXPECT_NE(error.find("smaller"), std::string::npos);
  o.path = dir_ + "/missing.img";
  EXPECT_EQ(FileBackend::Open(o, &error), nullptr);
}

}  // namespace
}  // namespace vios::backend

namespace vios::backend {
namespace {

TEST(FileBackendDefaultsTest, BufferedByDefaultAndRoundTrips) {
  char dir[] = "/tmp/vios-file-backend-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/d.img";
  {
    FileBackendOptions o;
    o.path = path;
    o.size_bytes = 1 << 20;
    o.create = true;
    std::string error;
    auto b = FileBackend::Open(o, &error);
    ASSERT_NE(b, nullptr) << error;
    EXPECT_FALSE(b->direct_io());
    std::vector<uint8_t> data(1536, 0x42);
    ASSERT_EQ(testing::RunIo(*b, IoOp::kWrite, 512, data), 0);
    std::vector<uint8_t> back(1536);
    ASSERT_EQ(testing::RunIo(*b, IoOp::kRead, 512, back), 0);
    EXPECT_EQ(back, data);
    EXPECT_EQ(testing::RunIo(*b, IoOp::kFlush, 0, {}), 0);
  }
  ::unlink(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace vios::backend
