// Argument validation and idempotent no-ops of the Node service, without an agent or API server.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>

#include "csi-driver/node_service.h"

namespace vios::csi {
namespace {

namespace fs = std::filesystem;
using ::csi::v1::VolumeCapability;

class NodeValidationTest : public ::testing::Test {
 protected:
  NodeValidationTest()
      : dir_(fs::temp_directory_path() / ("csi-node-test-" + std::to_string(::getpid()))),
        client_(Config(),
                kube::RetryPolicy{1, std::chrono::milliseconds(1), std::chrono::milliseconds(1)}),
        metrics_(registry_),
        service_(client_, Options(dir_), metrics_) {
    fs::create_directories(dir_);
  }
  ~NodeValidationTest() override { fs::remove_all(dir_); }

  static kube::Config Config() {
    kube::Config c;
    c.server = "http://127.0.0.1:1";
    c.connect_timeout = std::chrono::milliseconds(200);
    return c;
  }
  static NodeOptions Options(const fs::path& dir) {
    NodeOptions o;
    o.node_id = "node-a";
    o.agent_socket = (dir / "no-agent.sock").string();
    o.state_dir = (dir / "state").string();
    return o;
  }
  static VolumeCapability MountCap() {
    VolumeCapability cap;
    cap.mutable_mount();
    cap.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return cap;
  }

  fs::path dir_;
  kube::Client client_;
  metrics::Registry registry_;
  RpcMetrics metrics_;
  NodeService service_;
};

TEST_F(NodeValidationTest, StageRequiresIdPathAndCapability) {
  ::csi::v1::NodeStageVolumeResponse resp;
  ::csi::v1::NodeStageVolumeRequest req;
  req.set_staging_target_path((dir_ / "staging").string());
  *req.mutable_volume_capability() = MountCap();
  EXPECT_EQ(service_.NodeStageVolume(nullptr, &req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_volume_id("v");
  req.clear_staging_target_path();
  EXPECT_EQ(service_.NodeStageVolume(nullptr, &req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_staging_target_path((dir_ / "staging").string());
  req.clear_volume_capability();
  EXPECT_EQ(service_.NodeStageVolume(nullptr, &req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(NodeValidationTest, PublishRequiresStagingPath) {
  ::csi::v1::NodePublishVolumeRequest req;
  ::csi::v1::NodePublishVolumeResponse resp;
  req.set_volume_id("v");
  req.set_target_path((dir_ / "target").string());
  *req.mutable_volume_capability() = MountCap();
  EXPECT_EQ(service_.NodePublishVolume(nullptr, &req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(NodeValidationTest, UnstageAndUnpublishOfUnknownVolumesSucceed) {
  ::csi::v1::NodeUnstageVolumeRequest ureq;
  ::csi::v1::NodeUnstageVolumeResponse uresp;
  ureq.set_volume_id("never-staged");
  ureq.set_staging_target_path((dir_ / "staging").string());
  EXPECT_TRUE(service_.NodeUnstageVolume(nullptr, &ureq, &uresp).ok());
  ::csi::v1::NodeUnpublishVolumeRequest preq;
  ::csi::v1::NodeUnpublishVolumeResponse presp;
  preq.set_volume_id("never-staged");
  preq.set_target_path((dir_ / "target").string());
  fs::create_directories(dir_ / "target");
  EXPECT_TRUE(service_.NodeUnpublishVolume(nullptr, &preq, &presp).ok());
  EXPECT_FALSE(fs::exists(dir_ / "target"));  // the SP removes the target path it was given
}

TEST_F(NodeValidationTest, StatsAndExpandOfUnstagedVolumesAreNotFound) {
  ::csi::v1::NodeGetVolumeStatsRequest sreq;
  ::csi::v1::NodeGetVolumeStatsResponse sresp;
  sreq.set_volume_id("v");
  EXPECT_EQ(service_.NodeGetVolumeStats(nullptr, &sreq, &sresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  sreq.set_volume_path("some/path");
  EXPECT_EQ(service_.NodeGetVolumeStats(nullptr, &sreq, &sresp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ::csi::v1::NodeExpandVolumeRequest ereq;
  ::csi::v1::NodeExpandVolumeResponse eresp;
  ereq.set_volume_id("v");
  EXPECT_EQ(service_.NodeExpandVolume(nullptr, &ereq, &eresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ereq.set_volume_path("some/path");
  EXPECT_EQ(service_.NodeExpandVolume(nullptr, &ereq, &eresp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(NodeValidationTest, InfoAndProbeReportNodeAndMissingAgent) {
  ::csi::v1::NodeGetInfoRequest req;
  ::csi::v1::NodeGetInfoResponse resp;
  ASSERT_TRUE(service_.NodeGetInfo(nullptr, &req, &resp).ok());
  EXPECT_EQ(resp.node_id(), "node-a");
  grpc::Status ready = service_.AgentReady();
  EXPECT_FALSE(ready.ok());
  EXPECT_NE(ready.error_message().find("no-agent.sock"), std::string::npos)
      << ready.error_message();
}

}  // namespace
}  // namespace vios::csi
