// The agent's local API end to end: a real Agent over a file pool, its gRPC service on a unix
// socket, driven by the generated client the CSI node plugin uses; ports checked with libiscsi.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "node-agent/app/agent.h"
#include "proto/agent.grpc.pb.h"

namespace vios::agent {
namespace {

namespace v1 = ::vios::agent::v1;
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:api-test";

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vios-agent-api-XXXXXX";
    dir_ = mkdtemp(tmpl);
    AgentConfig config = ParseAgentConfig(
        "node: api-test\n"
        "listen: {iscsi: ['127.0.0.1:0'], api: " +
        dir_ +
        "/agent.sock}\n"
        "stateDir: " +
        dir_ +
        "/state\n"
        "pools:\n"
        "  - name: pool0\n"
        "    extentSize: 16Mi\n"
        "    backends: [{name: file0, file: {path: " +
        dir_ + "/pool.img, size: 256Mi, create: true}}]\n");
    agent_ = Agent::Create(config);
    agent_->Start();
    auto channel =
        grpc::CreateChannel("unix://" + dir_ + "/agent.sock", grpc::InsecureChannelCredentials());
    stub_ = v1::Agent::NewStub(channel);
  }
  void TearDown() override {
    agent_->Stop();
    std::filesystem::remove_all(dir_);
  }

  static v1::CreateVirtualPortRequest IscsiPort(const std::string& name, uint64_t offset_mib,
                                                uint64_t length_mib) {
    v1::CreateVirtualPortRequest req;
    req.set_name(name);
    req.set_volume_id("vol-" + name);
    req.set_pool("pool0");
    auto* e = req.add_extents();
    e->set_backend("file0");
    e->set_offset(offset_mib << 20);
    e->set_length(length_mib << 20);
    req.set_transport(v1::ATTACH_TRANSPORT_ISCSI);
    req.add_allowed_initiators(kInitiator);
    return req;
  }

  grpc::Status Create(const v1::CreateVirtualPortRequest& req,
                      v1::CreateVirtualPortResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->CreateVirtualPort(&ctx, req, resp);
  }

  // Capacity reads READ CAPACITY(16) through a real iSCSI login; -1 if login fails.
  static int64_t Capacity(const v1::VirtualPort& port) {
    iscsi_context* iscsi = iscsi_create_context(kInitiator);
    iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_targetname(iscsi, port.target_iqn().c_str());
    iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
    int64_t bytes = -1;
    if (iscsi_full_connect_sync(iscsi, port.portal().c_str(), static_cast<int>(port.lun())) == 0) {
      scsi_task* task = iscsi_readcapacity16_sync(iscsi, static_cast<int>(port.lun()));
      if (task && task->status == SCSI_STATUS_GOOD) {
        auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(task));
        if (rc) bytes = static_cast<int64_t>((rc->returned_lba + 1) * rc->block_length);
      }
      if (task) scsi_free_scsi_task(task);
      iscsi_logout_sync(iscsi);
    }
    iscsi_destroy_context(iscsi);
    return bytes;
  }

  std::string dir_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

TEST_F(AgentApiTest, CreatesAnIscsiPortThatServesTheVolume) {
  v1::CreateVirtualPortResponse resp;
  ASSERT_TRUE(Create(IscsiPort("pod-a", 0, 32), &resp).ok());
  EXPECT_EQ(resp.port().target_iqn(), "iqn.2026-11.dev.vios:vol-pod-a:pod-a");
  EXPECT_EQ(resp.port().size_bytes(), 32u << 20);
  EXPECT_EQ(Capacity(resp.port()), int64_t{32} << 20);
}

TEST_F(AgentApiTest, CreateIsIdempotentByNameAndRefusesAChangedRequest) {
  v1::CreateVirtualPortResponse first, again, changed;
  ASSERT_TRUE(Create(IscsiPort("pod-b", 32, 16), &first).ok());
  ASSERT_TRUE(Create(IscsiPort("pod-b", 32, 16), &again).ok());
  EXPECT_EQ(first.port().target_iqn(), again.port().target_iqn());
  auto other = IscsiPort("pod-b", 32, 16);
  other.clear_allowed_initiators();
  other.add_allowed_initiators("iqn.2026-11.dev.vios:someone-else");
  grpc::Status status = Create(other, &changed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
}

TEST_F(AgentApiTest, GrowsAVolumeOnline) {
  v1::CreateVirtualPortResponse resp;
  ASSERT_TRUE(Create(IscsiPort("pod-c", 64, 16), &resp).ok());
  auto grown = IscsiPort("pod-c", 64, 16);
  auto* e = grown.add_extents();
  e->set_backend("file0");
  e->set_offset(128u << 20);
  e->set_length(16u << 20);
  ASSERT_TRUE(Create(grown, &resp).ok());
  EXPECT_EQ(resp.port().size_bytes(), 32u << 20);
  EXPECT_EQ(Capacity(resp.port()), int64_t{32} << 20);
}

TEST_F(AgentApiTest, RejectsBadRequestsWithTheFieldNamed) {
  v1::CreateVirtualPortResponse resp;
  auto bad_extent = IscsiPort("pod-d", 0, 16);
  bad_extent.mutable_extents(0)->set_offset(100);
  grpc::Status s = Create(bad_extent, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("extents[0]"), std::string::npos) << s.error_message();

  auto unknown_pool = IscsiPort("pod-d", 0, 16);
  unknown_pool.set_pool("nope");
  s = Create(unknown_pool, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  auto past_end = IscsiPort("pod-d", 250, 16);
  s = Create(past_end, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  auto no_acl = IscsiPort("pod-d", 0, 16);
  no_acl.clear_allowed_initiators();
  s = Create(no_acl, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("allowed_initiators"), std::string::npos);

  auto short_secret = IscsiPort("pod-d", 0, 16);
  short_secret.mutable_chap()->set_user("u");
  short_secret.mutable_chap()->set_secret("short");
  s = Create(short_secret, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext ctx;
  v1::ListVirtualPortsResponse list;
  ASSERT_TRUE(stub_->ListVirtualPorts(&ctx, v1::ListVirtualPortsRequest(), &list).ok());
  EXPECT_EQ(list.ports_size(), 0) << "a refused request left a port behind";
}

TEST_F(AgentApiTest, DeleteClosesThePort) {
  v1::CreateVirtualPortResponse resp;
  ASSERT_TRUE(Create(IscsiPort("pod-e", 0, 16), &resp).ok());
  ASSERT_GT(Capacity(resp.port()), 0);
  v1::DeleteVirtualPortRequest del;
  del.set_name("pod-e");
  v1::DeleteVirtualPortResponse out;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DeleteVirtualPort(&ctx, del, &out).ok());
    EXPECT_TRUE(out.existed());
  }
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DeleteVirtualPort(&ctx, del, &out).ok());
    EXPECT_FALSE(out.existed());
  }
  EXPECT_EQ(Capacity(resp.port()), -1) << "the deleted port still accepts logins";
}

TEST_F(AgentApiTest, FusePortExposesTheVolumeAsAFile) {
  auto req = IscsiPort("pod-f", 0, 16);
  req.set_transport(v1::ATTACH_TRANSPORT_FUSE);
  v1::CreateVirtualPortResponse resp;
  grpc::Status s = Create(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(resp.port().fuse_path().empty());
  struct stat st {};
  ASSERT_EQ(stat(resp.port().fuse_path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 16u << 20);
  int fd = open(resp.port().fuse_path().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char block[4096];
  std::memset(block, 'v', sizeof(block));
  ASSERT_EQ(pwrite(fd, block, sizeof(block), 8192), static_cast<ssize_t>(sizeof(block)));
  close(fd);
  // The same bytes are on the backend at the extent's offset (extent 0 starts at byte 0).
  int raw = open((dir_ + "/pool.img").c_str(), O_RDONLY);
  char back[4096] = {};
  ASSERT_EQ(pread(raw, back, sizeof(back), 8192), static_cast<ssize_t>(sizeof(back)));
  close(raw);
  EXPECT_EQ(std::memcmp(block, back, sizeof(block)), 0);
  v1::DeleteVirtualPortRequest del;
  del.set_name("pod-f");
  v1::DeleteVirtualPortResponse out;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->DeleteVirtualPort(&ctx, del, &out).ok());
  EXPECT_NE(stat(resp.port().fuse_path().c_str(), &st), 0) << "still mounted after delete";
}

TEST_F(AgentApiTest, AgentInfoReportsPoolsAndPaths) {
  grpc::ClientContext ctx;
  v1::AgentInfoResponse info;
  ASSERT_TRUE(stub_->AgentInfo(&ctx, v1::AgentInfoRequest(), &info).ok());
  EXPECT_EQ(info.node_name(), "api-test");
  ASSERT_EQ(info.pools_size(), 1);
  ASSERT_EQ(info.paths_size(), 1);
  EXPECT_EQ(info.paths(0).state(), v1::PATH_STATE_HEALTHY);
}

}  // namespace
}  // namespace vios::agent
