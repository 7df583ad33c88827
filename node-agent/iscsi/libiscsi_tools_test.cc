// Integration: libiscsi's own command-line tools (iscsi-inq, iscsi-ls, iscsi-readcapacity16)
// against our Server with an in-memory device: real initiator code we did not write.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "node-agent/iscsi/fake_device_test_util.h"
#include "node-agent/iscsi/server.h"

namespace vios::iscsi {
namespace {

constexpr char kTarget[] = "iqn.2026-11.dev.vios:vol1";
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:client";

std::string RunTool(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  *status = pclose(pipe);
  return out;
}

class LibiscsiToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TargetConfig config;
    config.iqn = kTarget;
    config.allowed_initiators = {kInitiator};
    ASSERT_TRUE(registry_.Add(std::make_shared<Target>(config, &device_)));
    TargetConfig hidden;
    hidden.iqn = "iqn.2026-11.dev.vios:hidden";
    hidden.allowed_initiators = {"iqn.2026-11.dev.vios:someone-else"};
    ASSERT_TRUE(registry_.Add(std::make_shared<Target>(hidden, &device_)));
    server_ = std::make_unique<Server>(ServerConfig{}, &registry_);
    ASSERT_TRUE(server_->Start());
    std::string error;
    port_ = server_->AddPortal("127.0.0.1", 0, 1, &error);
    ASSERT_NE(port_, 0) << error;
  }
  void TearDown() override { server_->Stop(); }

  std::string Url(const std::string& extra = "") {
    return "iscsi://127.0.0.1:" + std::to_string(port_) + "/" + kTarget + "/0" + extra;
  }

  testing::FakeDevice device_;
  TargetRegistry registry_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(LibiscsiToolsTest, IscsiInqReadsStandardInquiry) {
  int status = -1;
  std::string out =
      RunTool(std::string("timeout 20 iscsi-inq -i ") + kInitiator + " " + Url(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("FAKE DEVICE"), std::string::npos) << out;
}

TEST_F(LibiscsiToolsTest, IscsiLsShowsOnlyTargetsTheInitiatorMaySee) {
  int status = -1;
  std::string out = RunTool(std::string("timeout 20 iscsi-ls -s -i ") + kInitiator +
                                " iscsi://127.0.0.1:" + std::to_string(port_),
                            &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(kTarget), std::string::npos) << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
}

TEST_F(LibiscsiToolsTest, ReadCapacity16) {
  int status = -1;
  std::string out = RunTool(
      std::string("timeout 20 iscsi-readcapacity16 -i ") + kInitiator + " " + Url(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("ADDRESS:8191"), std::string::npos) << out;
}

TEST_F(LibiscsiToolsTest, InitiatorNotInAclIsRefused) {
  int status = -1;
  std::string out = RunTool(
      std::string("timeout 20 iscsi-inq -i iqn.2026-11.dev.vios:intruder ") + Url(), &status);
  EXPECT_NE(status, 0) << out;
}

}  // namespace
}  // namespace vios::iscsi
