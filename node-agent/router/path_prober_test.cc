// Path health: passive detection switches at once, probes move with hysteresis, the prober
// counts successes, failures and timeouts against a real device.
#include "node-agent/router/path_prober.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "node-agent/router/router_test_util.h"

namespace vios::router {
namespace {

using testing::ControlledDevice;

struct Recorder {
  std::mutex mu;
  std::vector<std::string> log;
  HealthTracker::OnChange Callback() {
    return [this](PathHealth from, PathHealth to, const char* reason) {
      std::lock_guard<std::mutex> lock(mu);
      log.push_back(std::string(PathHealthName(from)) + ">" + PathHealthName(to) + ":" + reason);
    };
  }
};

TEST(HealthTrackerTest, PathErrorLosesAtOnceAndMediumErrorsDoNot) {
  HealthTracker t({.heal_on_io_success = false});
  Recorder r;
  t.SetOnChange(r.Callback());
  t.OnIoResult(-EIO);
  t.OnIoResult(-EINVAL);
  EXPECT_EQ(t.Health(), PathHealth::kHealthy);
  t.OnIoResult(-ECONNRESET);
  EXPECT_EQ(t.Health(), PathHealth::kLost);
  t.OnIoResult(0);  // a late success does not heal while probes decide
  EXPECT_EQ(t.Health(), PathHealth::kLost);
  ASSERT_EQ(r.log.size(), 1u);
  EXPECT_EQ(r.log[0], "Healthy>Lost:io_error");
}

TEST(HealthTrackerTest, ProbesMoveWithHysteresis) {
  HealthTracker t({.lost_after = 3, .healthy_after = 2, .heal_on_io_success = false});
  Recorder r;
  t.SetOnChange(r.Callback());
  t.OnProbe(false);
  EXPECT_EQ(t.Health(), PathHealth::kDegraded);
  t.OnProbe(true);  // one good probe forgives a Degraded path
  EXPECT_EQ(t.Health(), PathHealth::kHealthy);
  t.OnProbe(false);
  t.OnProbe(false);
  EXPECT_EQ(t.Health(), PathHealth::kDegraded);
  t.OnProbe(false);
  EXPECT_EQ(t.Health(), PathHealth::kLost);
  t.OnProbe(true);
  EXPECT_EQ(t.Health(), PathHealth::kLost);  // one is not enough to fail back
  t.OnProbe(false);
  t.OnProbe(true);
  EXPECT_EQ(t.Health(), PathHealth::kLost);  // the count restarted
  t.OnProbe(true);
  EXPECT_EQ(t.Health(), PathHealth::kHealthy);
  EXPECT_EQ(r.log, (std::vector<std::string>{"Healthy>Degraded:probe", "Degraded>Healthy:probe",
                                             "Healthy>Degraded:probe", "Degraded>Lost:probe",
                                             "Lost>Healthy:probe"}));
}

TEST(HealthTrackerTest, TimeoutLosesAtOnceAndIoSuccessHealsWithoutProber) {
  HealthTracker t;  // heal_on_io_success: no prober
  t.OnIoTimeout();
  EXPECT_EQ(t.Health(), PathHealth::kLost);
  t.OnIoResult(0);
  EXPECT_EQ(t.Health(), PathHealth::kHealthy);
}

TEST(PathProberTest, ProbesFindLossAndRecoveryOfARealDevice) {
  ControlledDevice device(1 << 20);
  HealthTracker t({.lost_after = 2, .healthy_after = 2});
  PathProber prober(
      &device, &t,
      {.interval = std::chrono::milliseconds(10), .timeout = std::chrono::milliseconds(50)});
  prober.Start();
  auto wait_for = [&](PathHealth h) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (t.Health() != h && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return t.Health() == h;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(t.Health(), PathHealth::kHealthy);
  EXPECT_GT(prober.GetStats().success, 0u);
  EXPECT_GT(device.disk().count(backend::IoOp::kRead), 0u);

  device.Set(ControlledDevice::Mode::kFail, -ENOTCONN);
  ASSERT_TRUE(wait_for(PathHealth::kLost));
  EXPECT_GE(prober.GetStats().failure, 2u);

  device.Set(ControlledDevice::Mode::kPass);
  ASSERT_TRUE(wait_for(PathHealth::kHealthy));

  device.Set(ControlledDevice::Mode::kHang);  // a path that stops answering
  ASSERT_TRUE(wait_for(PathHealth::kLost));
  EXPECT_GE(prober.GetStats().timeout, 2u);
  EXPECT_EQ(device.hung(), 1u);  // never more than one probe inside the backend
  device.Set(ControlledDevice::Mode::kPass);
  device.Release();
  ASSERT_TRUE(wait_for(PathHealth::kHealthy));
  prober.Stop();
}

}  // namespace
}  // namespace vios::router
