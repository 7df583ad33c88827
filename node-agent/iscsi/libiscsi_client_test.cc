// Our Server against libiscsi's initiator library (not written here): header digests, CHAP and
// mutual CHAP, R2T-driven writes in several bursts, large reads split into many Data-In PDUs,
// task management, several sessions at once.
#include <gtest/gtest.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "node-agent/iscsi/fake_device_test_util.h"
#include "node-agent/iscsi/server.h"

namespace vios::iscsi {
namespace {

constexpr char kTarget[] = "iqn.2026-11.dev.vios:vol1";
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:client";

struct ContextDeleter {
  void operator()(iscsi_context* c) const {
    iscsi_logout_sync(c);
    iscsi_destroy_context(c);
  }
};
using Context = std::unique_ptr<iscsi_context, ContextDeleter>;

struct TaskDeleter {
  void operator()(scsi_task* t) const { scsi_free_scsi_task(t); }
};
using TaskPtr = std::unique_ptr<scsi_task, TaskDeleter>;

class LibiscsiClientTest : public ::testing::Test {
 protected:
  void StartServer(TargetConfig config, ServerConfig server_config = {}) {
    config.iqn = kTarget;
    if (config.allowed_initiators.empty()) config.allowed_initiators = {kInitiator};
    target_ = std::make_shared<Target>(config, &device_);
    ASSERT_TRUE(registry_.Add(target_));
    server_ = std::make_unique<Server>(server_config, &registry_);
    ASSERT_TRUE(server_->Start());
    std::string error;
    port_ = server_->AddPortal("127.0.0.1", 0, 1, &error);
    ASSERT_NE(port_, 0) << error;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  Context NewContext() {
    iscsi_context* c = iscsi_create_context(kInitiator);
    iscsi_set_targetname(c, kTarget);
    iscsi_set_session_type(c, ISCSI_SESSION_NORMAL);
    iscsi_set_noautoreconnect(c, 1);
    iscsi_set_timeout(c, 10);
    return Context(c);
  }
  bool Connect(iscsi_context* c) {
    std::string portal = "127.0.0.1:" + std::to_string(port_);
    return iscsi_full_connect_sync(c, portal.c_str(), 0) == 0;
  }
  void WriteAndReadBack(iscsi_context* c, uint32_t lba, uint32_t bytes, uint8_t seed) {
    std::vector<uint8_t> data(bytes);
    std::iota(data.begin(), data.end(), seed);
    TaskPtr w(iscsi_write10_sync(c, 0, lba, data.data(), bytes, 512, 0, 0, 0, 0, 0));
    ASSERT_TRUE(w) << iscsi_get_error(c);
    ASSERT_EQ(w->status, SCSI_STATUS_GOOD) << iscsi_get_error(c);
    TaskPtr r(iscsi_read10_sync(c, 0, lba, bytes, 512, 0, 0, 0, 0, 0));
    ASSERT_TRUE(r) << iscsi_get_error(c);
    ASSERT_EQ(r->status, SCSI_STATUS_GOOD);
    ASSERT_EQ(r->datain.size, static_cast<int>(bytes));
    EXPECT_EQ(std::vector<uint8_t>(r->datain.data, r->datain.data + bytes), data);
    EXPECT_EQ(0, std::memcmp(device_.data().data() + lba * 512, data.data(), bytes));
  }

  testing::FakeDevice device_;
  TargetRegistry registry_;
  std::shared_ptr<Target> target_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(LibiscsiClientTest, WritesAndReadsWithHeaderDigest) {
  StartServer({});
  Context c = NewContext();
  iscsi_set_header_digest(c.get(), ISCSI_HEADER_DIGEST_CRC32C);
  ASSERT_TRUE(Connect(c.get())) << iscsi_get_error(c.get());
  WriteAndReadBack(c.get(), 8, 512 * 512, 3);  // 256 KiB: immediate, unsolicited and R2T data.
  EXPECT_EQ(target_->counters().write_bytes.load(), 512u * 512);
  EXPECT_EQ(target_->counters().read_bytes.load(), 512u * 512);
  EXPECT_EQ(target_->counters().commands.load(), static_cast<uint64_t>(device_.submitted.load()));
}

TEST_F(LibiscsiClientTest, SolicitsWritesInBurstsWithInitialR2t) {
  ServerConfig sc;
  sc.limits.max_burst_length = 16384;
  sc.limits.max_outstanding_r2t = 1;
  StartServer({}, sc);
  Context c = NewContext();
  iscsi_set_initial_r2t(c.get(), ISCSI_INITIAL_R2T_YES);
  iscsi_set_immediate_data(c.get(), ISCSI_IMMEDIATE_DATA_NO);
  ASSERT_TRUE(Connect(c.get())) << iscsi_get_error(c.get());
  WriteAndReadBack(c.get(), 100, 1024 * 1024, 9);  // 64 R2T sequences, 1 MiB of Data-In.
}

TEST_F(LibiscsiClientTest, ChapLogsInWithRightSecretOnly) {
  TargetConfig config;
  config.chap = {"alice", "alicesecret123", "", ""};
  StartServer(config);
  Context good = NewContext();
  iscsi_set_initiator_username_pwd(good.get(), "alice", "alicesecret123");
  ASSERT_TRUE(Connect(good.get())) << iscsi_get_error(good.get());
  WriteAndReadBack(good.get(), 0, 4096, 1);

  Context bad = NewContext();
  iscsi_set_initiator_username_pwd(bad.get(), "alice", "wrongsecret123");
  EXPECT_FALSE(Connect(bad.get()));
  Context none = NewContext();
  EXPECT_FALSE(Connect(none.get()));
  EXPECT_EQ(target_->counters().login_failures.load(), 2u);
}

TEST_F(LibiscsiClientTest, MutualChapAuthenticatesBothSides) {
  TargetConfig config;
  config.chap = {"alice", "alicesecret123", "target1", "targetsecret45"};
  StartServer(config);
  Context c = NewContext();
  iscsi_set_initiator_username_pwd(c.get(), "alice", "alicesecret123");
  iscsi_set_target_username_pwd(c.get(), "target1", "targetsecret45");
  ASSERT_TRUE(Connect(c.get())) << iscsi_get_error(c.get());
  WriteAndReadBack(c.get(), 0, 4096, 2);

  Context wrong = NewContext();
  iscsi_set_initiator_username_pwd(wrong.get(), "alice", "alicesecret123");
  iscsi_set_target_username_pwd(wrong.get(), "target1", "notthesecret00");
  EXPECT_FALSE(Connect(wrong.get()));  // The initiator refuses our (correct) proof.
}

TEST_F(LibiscsiClientTest, LunResetReachesDevice) {
  StartServer({});
  Context c = NewContext();
  ASSERT_TRUE(Connect(c.get()));
  EXPECT_EQ(iscsi_task_mgmt_lun_reset_sync(c.get(), 0), 0) << iscsi_get_error(c.get());
  EXPECT_EQ(device_.last_tmf.load(),
            static_cast<int>(scsi::TaskManagementFunction::kLogicalUnitReset));
  EXPECT_EQ(iscsi_task_mgmt_target_warm_reset_sync(c.get()), 0);
  EXPECT_EQ(device_.last_tmf.load(),
            static_cast<int>(scsi::TaskManagementFunction::kTargetWarmReset));
  WriteAndReadBack(c.get(), 0, 512, 4);
}

TEST_F(LibiscsiClientTest, SeveralSessionsShareOneTarget) {
  ServerConfig sc;
  sc.event_loops = 3;  // Connections spread over three loop threads.
  StartServer({}, sc);
  std::vector<Context> contexts;
  for (int i = 0; i < 4; ++i) {
    contexts.push_back(NewContext());
    iscsi_set_isid_random(contexts.back().get(), static_cast<uint32_t>(i + 1), 0);
    ASSERT_TRUE(Connect(contexts.back().get())) << iscsi_get_error(contexts.back().get());
  }
  for (int i = 0; i < 4; ++i) {
    WriteAndReadBack(contexts[i].get(), static_cast<uint32_t>(i * 64), 32768,
                     static_cast<uint8_t>(i));
  }
  EXPECT_EQ(target_->counters().active_sessions.load(), 4u);
  EXPECT_EQ(device_.nexus_added.load(), 4);
}

}  // namespace
}  // namespace vios::iscsi
