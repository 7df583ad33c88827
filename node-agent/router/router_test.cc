// Router decisions: path choice by health, per-path counters, retry of path errors only.
#include "node-agent/router/router.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "node-agent/backend/backend_test_util.h"
#include "node-agent/backend/memory_backend.h"

namespace vios::router {
namespace {

using backend::IoOp;
using backend::MemoryBackend;
using backend::testing::RunIo;

// A second path over its own device, with health set by the test (stands in for a peer path).
class FixedPath final : public Path {
 public:
  FixedPath(std::string name, backend::BlockDevice* device, PathHealth health)
      : health_(health), name_(std::move(name)), device_(device) {}
  std::string Name() const override { return name_; }
  PathHealth Health() const override { return health_; }
  backend::BlockDevice* Device() override { return device_; }
  void ReportResult(int result) override { last_result_ = result; }
  PathHealth health_;

 private:
  std::string name_;
  backend::BlockDevice* device_;
  int last_result_ = 0;
};

TEST(RouterTest, ForwardsToLocalPathAndCounts) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* raw = disk.get();
  Router router("pool0/a", std::move(disk));
  EXPECT_EQ(router.SizeBytes(), 1u << 20);
  std::vector<uint8_t> data(4096, 7);
  ASSERT_EQ(RunIo(router, IoOp::kWrite, 8192, data), 0);
  std::vector<uint8_t> back(4096);
  ASSERT_EQ(RunIo(router, IoOp::kRead, 8192, back), 0);
  EXPECT_EQ(back, data);
  EXPECT_EQ(raw->count(IoOp::kWrite), 1u);
  auto& c = router.local_path()->counters();
  EXPECT_EQ(c.writes.load(), 1u);
  EXPECT_EQ(c.reads.load(), 1u);
  EXPECT_EQ(c.read_bytes.load(), 4096u);
  uint64_t bucketed = 0;
  for (auto& b : c.latency_buckets) bucketed += b.load();
  EXPECT_EQ(bucketed, 2u);
}

TEST(RouterTest, MediumErrorsReachTheCallerAndKeepThePathHealthy) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* raw = disk.get();
  Router router("pool0/a", std::move(disk));
  raw->FailNext(-EIO);
  std::vector<uint8_t> buf(512);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -EIO);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kHealthy);
  EXPECT_EQ(router.local_path()->counters().errors.load(), 1u);
}

TEST(RouterTest, PathErrorsDegradeThenLoseTheLocalPathAndSuccessHeals) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* raw = disk.get();
  Router router("pool0/a", std::move(disk), /*failure_threshold=*/2);
  std::vector<uint8_t> buf(512);
  raw->FailNext(-ENOTCONN);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -ENOTCONN);  // no other path to retry on
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kDegraded);
  raw->FailNext(-ETIMEDOUT);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -ETIMEDOUT);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kLost);
  // With only a Lost path the router still tries it (and learns of recovery).
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), 0);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kHealthy);
}

TEST(RouterTest, ChoosesHealthyPathOverLostLocalAndRetriesPathFailures) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* local = disk.get();
  MemoryBackend peer_disk(1 << 20);
  Router router("pool0/a", std::move(disk), 1);
  auto peer = std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kHealthy);
  FixedPath* peer_raw = peer.get();
  router.AddPath(std::move(peer));
  EXPECT_EQ(router.ChoosePath(), router.local_path());  // local first while healthy
  // A path error on the local path is retried on the peer; the caller sees success.
  local->FailNext(-ECONNRESET);
  std::vector<uint8_t> data(512, 9);
  EXPECT_EQ(RunIo(router, IoOp::kWrite, 0, data), 0);
  EXPECT_EQ(peer_disk.count(IoOp::kWrite), 1u);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kLost);
  EXPECT_EQ(router.ChoosePath(), peer_raw);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, data), 0);
  EXPECT_EQ(peer_raw->counters().reads.load(), 1u);
  // Degraded beats Lost; with everything lost the first path is still tried.
  peer_raw->health_ = PathHealth::kDegraded;
  EXPECT_EQ(router.ChoosePath(), peer_raw);
  peer_raw->health_ = PathHealth::kLost;
  EXPECT_EQ(router.ChoosePath(), router.local_path());
}

}  // namespace
}  // namespace vios::router
