// IscsiBackend against a real tgtd on 127.0.0.1 (integration test).
#include "node-agent/backend/iscsi_backend.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/testing/malloc_counter.h"
#include "node-agent/backend/backend_test_util.h"
#include "node-agent/backend/tgtd_fixture.h"

namespace vios::backend {
namespace {

using testing::RunIo;
using testing::Tgtd;

constexpr uint64_t kSize = 64 << 20;
constexpr char kTarget[] = "iqn.2026-11.dev.vios.test:san";

class IscsiBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vios-iscsi-backend-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    file_ = dir_ + "/lun.img";
    const int fd = ::open(file_.c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kSize), 0);
    ::close(fd);
    // A port per test process keeps parallel runs apart; another process may already hold it
    // (tgtd uses the same number for its portal and control socket), so try a few.
    for (int attempt = 0; attempt < 8; ++attempt) {
      tgtd_ = std::make_unique<Tgtd>(20000 + (::getpid() + attempt * 2477) % 20000);
      if (tgtd_->Start()) break;
      tgtd_.reset();
    }
    ASSERT_NE(tgtd_, nullptr) << "tgtd did not start on any of 8 ports";
  }
  void TearDown() override {
    tgtd_.reset();
    ::unlink(file_.c_str());
    ::rmdir(dir_.c_str());
  }
  IscsiBackendOptions Options(const std::string& target = kTarget) {
    IscsiBackendOptions o;
    o.portal = tgtd_->portal();
    o.target = target;
    o.lun = 1;
    o.initiator_name = "iqn.2026-11.dev.vios.test:node-a";
    o.connect_timeout = std::chrono::milliseconds(5000);
    o.command_timeout_seconds = 3;
    return o;
  }
  std::string dir_;
  std::string file_;
  std::unique_ptr<Tgtd> tgtd_;
};

TEST_F(IscsiBackendTest, LogsInAndReadsWritesFlushesZeroes) {
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  std::string error;
  auto b = IscsiBackend::Open(Options(), &error);
  ASSERT_NE(b, nullptr) << error;
  EXPECT_TRUE(b->Connected());
  EXPECT_EQ(b->SizeBytes(), kSize);
  EXPECT_EQ(b->BlockSize(), 512u);
  std::vector<uint8_t> data(256 * 1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + 7);
  ASSERT_EQ(RunIo(*b, IoOp::kWrite, 1 << 20, data), 0);
  ASSERT_EQ(RunIo(*b, IoOp::kFlush, 0, {}), 0);
  // The data reached tgtd's backing file at the same offset.
  std::vector<uint8_t> on_disk(data.size());
  const int fd = ::open(file_.c_str(), O_RDONLY);
  ASSERT_EQ(::pread(fd, on_disk.data(), on_disk.size(), 1 << 20),
            static_cast<ssize_t>(on_disk.size()));
  ::close(fd);
  EXPECT_EQ(on_disk, data);
  std::vector<uint8_t> back(data.size());
  ASSERT_EQ(RunIo(*b, IoOp::kRead, 1 << 20, back), 0);
  EXPECT_EQ(back, data);
  // WriteZeroes and Discard both leave zeroes (WRITE SAME / UNMAP, or zero writes as fallback).
  ASSERT_EQ(RunIo(*b, IoOp::kWriteZeroes, 1 << 20, {}, 64 * 1024), 0);
  ASSERT_EQ(RunIo(*b, IoOp::kDiscard, (1 << 20) + 64 * 1024, {}, 64 * 1024), 0);
  ASSERT_EQ(RunIo(*b, IoOp::kRead, 1 << 20, back), 0);
  EXPECT_EQ(std::vector<uint8_t>(back.begin(), back.begin() + 128 * 1024),
            std::vector<uint8_t>(128 * 1024, 0));
  EXPECT_EQ(back[128 * 1024], data[128 * 1024]);
  // Out of range is refused locally.
  std::vector<uint8_t> one(512);
  EXPECT_EQ(RunIo(*b, IoOp::kRead, kSize, one), -EINVAL);
}

TEST_F(IscsiBackendTest, ManyConcurrentRequests) {
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  std::string error;
  auto b = IscsiBackend::Open(Options(), &error);
  ASSERT_NE(b, nullptr) << error;
  constexpr int kN = 128;
  std::vector<std::vector<uint8_t>> bufs(kN, std::vector<uint8_t>(4096));
  std::vector<IoRequest> reqs(kN);
  testing::Waiter waiter;
  for (int i = 0; i < kN; ++i) {
    std::memset(bufs[i].data(), i, 4096);
    reqs[i].op = IoOp::kWrite;
    reqs[i].offset = static_cast<uint64_t>(i) * 8192;
    reqs[i].write_buffer = bufs[i];
    reqs[i].completion = &waiter;
    b->Submit(&reqs[i]);
  }
  ASSERT_TRUE(waiter.Wait(kN));
  for (auto& r : reqs) EXPECT_EQ(r.result, 0);
  std::vector<uint8_t> back(4096);
  ASSERT_EQ(RunIo(*b, IoOp::kRead, 77 * 8192, back), 0);
  EXPECT_EQ(back, std::vector<uint8_t>(4096, 77));
}

TEST_F(IscsiBackendTest, InitiatorNameDecidesAccess) {
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_, "iqn.2026-11.dev.vios.test:pod-1"));
  auto o = Options();
  o.connect_timeout = std::chrono::milliseconds(1500);
  std::string error;
  EXPECT_EQ(IscsiBackend::Open(o, &error), nullptr);  // node-a is not in the ACL
  EXPECT_FALSE(error.empty());
  o.initiator_name = "iqn.2026-11.dev.vios.test:pod-1";  // the virtual port's own IQN
  auto b = IscsiBackend::Open(o, &error);
  ASSERT_NE(b, nullptr) << error;
  EXPECT_EQ(b->SizeBytes(), kSize);
}

TEST_F(IscsiBackendTest, ChapAuthentication) {
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  ASSERT_EQ(tgtd_->Admin("--mode account --op new --user vios --password s3cret-pass1"), 0);
  ASSERT_EQ(tgtd_->Admin("--mode account --op bind --tid 1 --user vios"), 0);
  auto o = Options();
  o.connect_timeout = std::chrono::milliseconds(1500);
  std::string error;
  EXPECT_EQ(IscsiBackend::Open(o, &error), nullptr);  // no CHAP
  o.chap_user = "vios";
  o.chap_secret = "wrong-secret00";
  EXPECT_EQ(IscsiBackend::Open(o, &error), nullptr);
  o.chap_secret = "s3cret-pass1";
  auto b = IscsiBackend::Open(o, &error);
  ASSERT_NE(b, nullptr) << error;
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(RunIo(*b, IoOp::kRead, 0, buf), 0);
}

TEST_F(IscsiBackendTest, ReconnectsAfterTheTargetComesBack) {
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  auto o = Options();
  o.backoff_initial = std::chrono::milliseconds(50);
  o.backoff_max = std::chrono::milliseconds(400);
  std::string error;
  auto b = IscsiBackend::Open(o, &error);
  ASSERT_NE(b, nullptr) << error;
  std::vector<uint8_t> data(4096, 0x3C);
  ASSERT_EQ(RunIo(*b, IoOp::kWrite, 0, data), 0);
  tgtd_->Kill();
  // I/O while the SAN is gone fails with a path error (or times out), never hangs forever.
  std::vector<uint8_t> back(4096);
  const int during = RunIo(*b, IoOp::kRead, 0, back);
  EXPECT_TRUE(during == -ENOTCONN || during == -ETIMEDOUT || during == 0) << during;
  ASSERT_TRUE(tgtd_->Start());
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  int result = -1;
  for (int i = 0; i < 100 && result != 0; ++i) {
    result = RunIo(*b, IoOp::kRead, 0, back);
    if (result != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(result, 0);
  EXPECT_EQ(back, data);
  EXPECT_TRUE(b->Connected());
}

// DESIGN.md §4: no heap allocation per I/O in steady state, down to libiscsi. Reads and writes
// run on the backend's session thread; after a warm-up, a thousand of them allocate nothing there.
TEST_F(IscsiBackendTest, SteadyStateReadsAndWritesAllocateNothingOnTheSessionThread) {
  if (!vios::testing::MallocCounter::Available()) {
    GTEST_SKIP() << "needs the sanitizer runtime's malloc hooks (the CI build has them)";
  }
  ASSERT_TRUE(tgtd_->AddTarget(1, kTarget, file_));
  std::string error;
  auto b = IscsiBackend::Open(Options(), &error);
  ASSERT_NE(b, nullptr) << error;
  ASSERT_TRUE(vios::testing::MallocCounter::Install());

  constexpr int kDepth = 16;
  std::vector<std::vector<uint8_t>> bufs(kDepth, std::vector<uint8_t>(4096));
  std::vector<IoRequest> reqs(kDepth);
  testing::Waiter waiter;
  uint64_t submitted = 0;
  auto round = [&](int n) {
    for (int i = 0; i < n; ++i) {
      for (int d = 0; d < kDepth; ++d) {
        IoRequest& r = reqs[d];
        r = IoRequest{};
        r.op = (i + d) % 2 == 0 ? IoOp::kWrite : IoOp::kRead;
        r.offset = static_cast<uint64_t>((i * kDepth + d) % 4096) * 4096;
        if (r.op == IoOp::kWrite) {
          r.write_buffer = bufs[d];
        } else {
          r.read_buffer = bufs[d];
        }
        r.completion = &waiter;
        b->Submit(&r);
      }
      submitted += kDepth;
      ASSERT_TRUE(waiter.Wait(submitted));
      for (const IoRequest& r : reqs) ASSERT_EQ(r.result, 0);
    }
  };
  round(50);  // Warm-up: op pool, libiscsi's PDU cache, queues.
  vios::testing::MallocCounter::Start();
  round(64);
  EXPECT_EQ(vios::testing::MallocCounter::Stop(), 0u)
      << "allocations on the session thread in 1024 I/Os";
}

}  // namespace
}  // namespace vios::backend
