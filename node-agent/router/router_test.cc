// Router decisions: local while healthy, reroute on loss (errors at once, hung I/O after the local
// timeout), spread over peers, retry of path errors only, hold and fail after io_timeout,
// failback, paths added and removed while I/O runs.
#include "node-agent/router/router.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "node-agent/backend/backend_test_util.h"
#include "node-agent/backend/memory_backend.h"
#include "node-agent/router/router_test_util.h"

namespace vios::router {
namespace {

using backend::IoOp;
using backend::MemoryBackend;
using backend::testing::RunIo;
using backend::testing::Waiter;
using testing::ControlledDevice;
using namespace std::chrono_literals;

// A peer path over its own device, with health set by the test; `alive` tells when it is gone.
class FixedPath final : public Path {
 public:
  FixedPath(std::string name, backend::BlockDevice* device, PathHealth health,
            bool* alive = nullptr)
      : health_(health), name_(std::move(name)), device_(device), alive_(alive) {
    if (alive_) *alive_ = true;
  }
  ~FixedPath() override {
    if (alive_) *alive_ = false;
  }
  std::string Name() const override { return name_; }
  PathHealth Health() const override { return health_; }
  backend::BlockDevice* Device() override { return device_; }
  void ReportResult(int result) override {
    if (IsPathError(result)) health_ = PathHealth::kLost;
  }
  std::atomic<PathHealth> health_;

 private:
  std::string name_;
  backend::BlockDevice* device_;
  bool* alive_;
};

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

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
  EXPECT_FALSE(router.Rerouting());
}

TEST(RouterTest, MediumErrorsReachTheCallerAndKeepThePathHealthy) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* raw = disk.get();
  Router router("pool0/a", std::move(disk));
  MemoryBackend peer_disk(1 << 20);
  router.AddPath(std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kHealthy));
  raw->FailNext(-EIO);
  std::vector<uint8_t> buf(512);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -EIO);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kHealthy);
  EXPECT_EQ(router.local_path()->counters().errors.load(), 1u);
  EXPECT_EQ(peer_disk.count(IoOp::kRead), 0u);  // a medium error is not retried elsewhere
}

TEST(RouterTest, PathErrorLosesLocalAtOnceAndRetriesOnAPeerThenFailsBack) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* local = disk.get();
  MemoryBackend peer_disk(1 << 20);
  std::vector<RouterEvent> events;
  std::mutex mu;
  Router router(
      "pool0/a", std::move(disk),
      RouterOptions{.health = {.heal_on_io_success = false}, .on_event = [&](const RouterEvent& e) {
                      std::lock_guard<std::mutex> lock(mu);
                      events.push_back(e);
                    }});
  auto peer = std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kHealthy);
  Path* peer_raw = peer.get();
  ASSERT_TRUE(router.AddPath(std::move(peer)));
  EXPECT_FALSE(
      router.AddPath(std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kHealthy)));
  EXPECT_EQ(router.ChoosePath(), router.local_path());
  local->FailNext(-ECONNRESET);
  std::vector<uint8_t> data(512, 9);
  EXPECT_EQ(RunIo(router, IoOp::kWrite, 0, data), 0);  // the caller sees success
  EXPECT_EQ(peer_disk.count(IoOp::kWrite), 1u);
  EXPECT_EQ(peer_disk.Read(0, 512), data);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kLost);
  EXPECT_TRUE(router.Rerouting());
  EXPECT_EQ(router.ChoosePath(), peer_raw);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, data), 0);
  EXPECT_EQ(peer_raw->counters().reads.load(), 1u);
  EXPECT_EQ(local->count(IoOp::kRead), 0u);
  EXPECT_EQ(router.GetStats().reroutes_io_error, 1u);

  // Failback once the local path is Healthy again.
  std::this_thread::sleep_for(5ms);
  router.local_path()->SetHealth(PathHealth::kHealthy);
  EXPECT_FALSE(router.Rerouting());
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, data), 0);
  EXPECT_EQ(local->count(IoOp::kRead), 1u);
  EXPECT_GE(router.GetStats().rerouted_ns, 5'000'000u);
  std::lock_guard<std::mutex> lock(mu);
  std::vector<RouterEvent::Kind> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  EXPECT_EQ(kinds, (std::vector<RouterEvent::Kind>{
                       RouterEvent::Kind::kPathHealth, RouterEvent::Kind::kRerouteStarted,
                       RouterEvent::Kind::kPathHealth, RouterEvent::Kind::kRerouteEnded}));
  EXPECT_EQ(events[1].reason, "io_error");
}

TEST(RouterTest, NoUsablePathHoldsThenFailsWithTheNoPathErrnoAfterIoTimeout) {
  auto dev = std::make_unique<ControlledDevice>(1 << 20);
  ControlledDevice* local = dev.get();
  Router router("pool0/a", std::move(dev), RouterOptions{.io_timeout = 300ms});
  local->Set(ControlledDevice::Mode::kFail, -ENOTCONN);
  std::vector<uint8_t> buf(512);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -kNoPathErrno);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 1s);
  EXPECT_GT(local->submitted(), 3u);  // without a prober, held I/O keeps trying the local path
  EXPECT_EQ(router.GetStats().no_path_failures, 1u);
  // The path comes back: I/O resumes without anything restarted.
  local->Set(ControlledDevice::Mode::kPass);
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), 0);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kHealthy);
}

// spec.paths at run time: ioTimeout bounds held requests from the next request on, the probe
// interval and failureThreshold reach the running prober without a restart.
TEST(RouterTest, IoTimeoutProbeIntervalAndThresholdChangeAtRunTime) {
  auto dev = std::make_unique<ControlledDevice>(1 << 20);
  ControlledDevice* local = dev.get();
  Router router("pool0/a", std::move(dev), RouterOptions{.io_timeout = 30s});
  router.SetProbing(1h, 2);  // started by SetProbing; first probe at once, then none for an hour
  router.SetIoTimeout(200ms);
  local->Set(ControlledDevice::Mode::kFail, -ENOTCONN);
  std::vector<uint8_t> buf(512);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(RunIo(router, IoOp::kRead, 0, buf), -kNoPathErrno);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kLost);

  // Probes every 20 ms now; three good ones fail back (the interval change cut the hour short).
  local->Set(ControlledDevice::Mode::kPass);
  t0 = std::chrono::steady_clock::now();
  router.SetProbing(20ms, 4);
  while (router.local_path()->Health() != PathHealth::kHealthy &&
         std::chrono::steady_clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kHealthy);
  EXPECT_EQ(router.prober()->interval(), 20ms);
  // failureThreshold 4: three failed probes leave the path Degraded, the fourth loses it.
  local->Set(ControlledDevice::Mode::kFail, -ENOTCONN);
  t0 = std::chrono::steady_clock::now();
  while (router.prober()->GetStats().failure < 3 && std::chrono::steady_clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(1ms);
  }
  if (router.prober()->GetStats().failure == 3) {
    EXPECT_EQ(router.local_path()->Health(), PathHealth::kDegraded);
  }
  while (router.local_path()->Health() != PathHealth::kLost &&
         std::chrono::steady_clock::now() - t0 < 5s) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(router.local_path()->Health(), PathHealth::kLost);
  EXPECT_GE(router.prober()->GetStats().failure, 4u);
  router.StopProber();
}

TEST(RouterTest, HeldRequestGoesToAPeerAsSoonAsOneIsHealthy) {
  auto dev = std::make_unique<ControlledDevice>(1 << 20);
  ControlledDevice* local = dev.get();
  Router router("pool0/a", std::move(dev), RouterOptions{.io_timeout = 5s});
  router.StartProber({.interval = 1h, .timeout = 1h});  // probes decide recovery, not I/O
  ASSERT_TRUE(Eventually([&] { return router.prober()->GetStats().success == 1; }));
  MemoryBackend peer_disk(1 << 20);
  auto peer = std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kLost);
  FixedPath* peer_raw = peer.get();
  router.AddPath(std::move(peer));
  local->Set(ControlledDevice::Mode::kFail, -ETIMEDOUT);
  Waiter waiter;
  std::vector<uint8_t> buf(512, 3);
  backend::IoRequest req;
  req.op = IoOp::kWrite;
  req.write_buffer = buf;
  req.completion = &waiter;
  router.Submit(&req);
  ASSERT_TRUE(Eventually([&] { return router.GetStats().held == 1; }));
  EXPECT_EQ(waiter.done(), 0u);
  const uint64_t tries = local->submitted();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(local->submitted(), tries);  // with a prober, a Lost local path gets no held I/O
  peer_raw->health_ = PathHealth::kHealthy;
  ASSERT_TRUE(waiter.Wait(1));
  EXPECT_EQ(req.result, 0);
  EXPECT_EQ(peer_disk.Read(0, 512), buf);
}

TEST(RouterTest, HungLocalIoLosesThePathAfterTheLocalTimeoutAndNewIoReroutes) {
  auto dev = std::make_unique<ControlledDevice>(1 << 20);
  ControlledDevice* local = dev.get();
  std::atomic<int> stalled{0};
  Router router("pool0/a", std::move(dev),
                RouterOptions{.local_io_timeout = 100ms, .local_stalled = [&] { ++stalled; }});
  MemoryBackend peer_disk(1 << 20);
  router.AddPath(std::make_unique<FixedPath>("peer:b", &peer_disk, PathHealth::kHealthy));
  local->Set(ControlledDevice::Mode::kHang);
  Waiter hung;
  std::vector<uint8_t> a(512, 1);
  backend::IoRequest req;
  req.op = IoOp::kWrite;
  req.write_buffer = a;
  req.completion = &hung;
  const auto t0 = std::chrono::steady_clock::now();
  router.Submit(&req);
  ASSERT_TRUE(Eventually([&] { return router.Rerouting(); }));
  const auto detected = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(detected, 100ms);
  EXPECT_LT(detected, 400ms);
  EXPECT_EQ(stalled.load(), 1);
  EXPECT_EQ(router.GetStats().reroutes_io_timeout, 1u);
  // New I/O goes to the peer at once.
  std::vector<uint8_t> b(512, 2);
  EXPECT_EQ(RunIo(router, IoOp::kWrite, 4096, b), 0);
  EXPECT_EQ(peer_disk.Read(4096, 512), b);
  // The hung request stays with the backend (it owns the caller's buffer) until it fails; then it
  // is retried on the peer.
  EXPECT_EQ(hung.done(), 0u);
  local->Release(-ENOTCONN);
  ASSERT_TRUE(hung.Wait(1));
  EXPECT_EQ(req.result, 0);
  EXPECT_EQ(peer_disk.Read(0, 512), a);
}

TEST(RouterTest, SpreadsLoadOverHealthyPeersByOutstandingRequests) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  Router router("pool0/a", std::move(disk));
  router.local_path()->SetHealth(PathHealth::kLost);
  ControlledDevice b(1 << 20), c(1 << 20);
  b.Set(ControlledDevice::Mode::kHang);
  c.Set(ControlledDevice::Mode::kHang);
  router.AddPath(std::make_unique<FixedPath>("peer:b", &b, PathHealth::kHealthy));
  router.AddPath(std::make_unique<FixedPath>("peer:c", &c, PathHealth::kHealthy));
  Waiter waiter;
  std::vector<backend::IoRequest> reqs(10);
  std::vector<uint8_t> buf(512 * 10);
  for (int i = 0; i < 10; ++i) {
    reqs[i].op = IoOp::kRead;
    reqs[i].offset = 512u * i;
    reqs[i].read_buffer = std::span<uint8_t>(buf).subspan(512u * i, 512);
    reqs[i].completion = &waiter;
    router.Submit(&reqs[i]);
  }
  EXPECT_EQ(b.hung(), 5u);
  EXPECT_EQ(c.hung(), 5u);
  b.Release();
  c.Release();
  ASSERT_TRUE(waiter.Wait(10));
  for (auto& r : reqs) EXPECT_EQ(r.result, 0);
}

TEST(RouterTest, PeerFailingMidRequestMovesTheRequestToAnotherPeer) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  Router router("pool0/a", std::move(disk));
  router.local_path()->SetHealth(PathHealth::kLost);
  ControlledDevice b(1 << 20);
  MemoryBackend c(1 << 20);
  b.Set(ControlledDevice::Mode::kHang);
  auto pb = std::make_unique<FixedPath>("peer:b", &b, PathHealth::kHealthy);
  router.AddPath(std::move(pb));
  Waiter waiter;
  std::vector<uint8_t> data(512, 5);
  backend::IoRequest req;
  req.op = IoOp::kWrite;
  req.write_buffer = data;
  req.completion = &waiter;
  router.Submit(&req);
  ASSERT_EQ(b.hung(), 1u);
  router.AddPath(std::make_unique<FixedPath>("peer:c", &c, PathHealth::kHealthy));
  b.Release(-ECONNRESET);  // peer b dies with the request in flight
  ASSERT_TRUE(waiter.Wait(1));
  EXPECT_EQ(req.result, 0);
  EXPECT_EQ(c.Read(0, 512), data);
  EXPECT_EQ(router.GetStats().retries, 1u);
}

TEST(RouterTest, RemovedPathFinishesItsRequestsAndIsDestroyedWhenIdle) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  Router router("pool0/a", std::move(disk));
  router.local_path()->SetHealth(PathHealth::kLost);
  ControlledDevice b(1 << 20);
  b.Set(ControlledDevice::Mode::kHang);
  bool alive = false;
  router.AddPath(std::make_unique<FixedPath>("peer:b", &b, PathHealth::kHealthy, &alive));
  Waiter waiter;
  std::vector<uint8_t> buf(512);
  backend::IoRequest req;
  req.op = IoOp::kRead;
  req.read_buffer = buf;
  req.completion = &waiter;
  router.Submit(&req);
  EXPECT_TRUE(router.RemovePath("peer:b"));
  EXPECT_FALSE(router.RemovePath("peer:b"));
  EXPECT_FALSE(router.RemovePath("local"));
  EXPECT_EQ(router.Paths().size(), 1u);
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(alive);  // still in use
  b.Release();
  ASSERT_TRUE(waiter.Wait(1));
  EXPECT_EQ(req.result, 0);
  EXPECT_TRUE(Eventually([&] { return !alive; }));
}

}  // namespace
}  // namespace vios::router
