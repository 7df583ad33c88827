// ServerFixture: a Server on 127.0.0.1:<ephemeral> with one FakeDevice-backed target, for tests
// that drive it with the hand-written TestInitiator.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "node-agent/iscsi/fake_device_test_util.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/test_initiator_test_util.h"

namespace vios::iscsi::testing {

inline constexpr char kTargetName[] = "iqn.2026-11.dev.vios:vol1";
inline constexpr char kInitiatorName[] = "iqn.2026-11.dev.vios:client";

class ServerFixture : public ::testing::Test {
 protected:
  void StartServer(TargetConfig config = {}, ServerConfig server_config = {}) {
    config.iqn = kTargetName;
    if (config.allowed_initiators.empty()) config.allowed_initiators = {kInitiatorName};
    target_ = std::make_shared<Target>(config, &device_);
    ASSERT_TRUE(registry_.Add(target_));
    server_ = std::make_unique<Server>(server_config, &registry_);
    ASSERT_TRUE(server_->Start());
    std::string error;
    port_ = server_->AddPortal("127.0.0.1", 0, 1, &error);
    ASSERT_NE(port_, 0) << error;
  }
  void TearDown() override {
    device_.Hold(false);
    device_.ReleaseAll();
    if (server_) server_->Stop();
  }

  std::unique_ptr<TestInitiator> LoggedIn(uint8_t isid_last = 1) {
    auto ini = std::make_unique<TestInitiator>();
    ini->isid[5] = isid_last;
    EXPECT_TRUE(ini->Connect(port_));
    EXPECT_EQ(ini->LoginNone(kInitiatorName, kTargetName), 0);
    return ini;
  }

  // Healthy checks that a fresh session still gets work done (other sessions unaffected).
  void ExpectHealthy() {
    auto ini = LoggedIn(99);
    ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
    auto r = ini->Receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->bhs.opcode(), Opcode::kDataIn);
    EXPECT_EQ(r->bhs.flags() & 0x01, 0x01);  // Status collapsed into Data-In.
  }

  bool WaitFor(const std::function<bool()>& condition, int ms = 3000) {
    for (int i = 0; i < ms / 5; ++i) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
  }

  FakeDevice device_;
  TargetRegistry registry_;
  std::shared_ptr<Target> target_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

inline int LoginStatusOf(const RawPdu& r) { return (r.bhs.bytes[36] << 8) | r.bhs.bytes[37]; }

}  // namespace vios::iscsi::testing
