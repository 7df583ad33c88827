// Argument validation of the Controller service: malformed requests get the CSI spec's codes
// before anything touches the API server. The client points at a closed port, so a test that
// reached the API server would see UNAVAILABLE instead of the code it expects.
#include <gtest/gtest.h>

#include "csi-driver/controller_service.h"

namespace vios::csi {
namespace {

using ::csi::v1::VolumeCapability;

class NoZeroer final : public ExtentZeroer {
 public:
  bool Zero(const PoolSpec&, const std::vector<pool::Extent>&, std::string* error) override {
    *error = "not in unit tests";
    return false;
  }
  bool Copy(const PoolSpec&, const std::vector<pool::Extent>&, const std::vector<pool::Extent>&,
            uint64_t, std::string* error) override {
    *error = "not in unit tests";
    return false;
  }
};

kube::Config Unreachable() {
  kube::Config c;
  c.server = "http://127.0.0.1:1";
  c.connect_timeout = std::chrono::milliseconds(200);
  c.request_timeout = std::chrono::milliseconds(500);
  return c;
}

class ControllerValidationTest : public ::testing::Test {
 protected:
  ControllerValidationTest()
      : client_(Unreachable(),
                kube::RetryPolicy{1, std::chrono::milliseconds(1), std::chrono::milliseconds(1)}),
        metrics_(registry_),
        service_(client_, zeroer_, ControllerOptions{"default", "local", 1 << 30, {}}, metrics_) {}

  static VolumeCapability MountCap(
      VolumeCapability::AccessMode::Mode mode = VolumeCapability::AccessMode::SINGLE_NODE_WRITER) {
    VolumeCapability cap;
    cap.mutable_mount();
    cap.mutable_access_mode()->set_mode(mode);
    return cap;
  }

  grpc::StatusCode Create(const ::csi::v1::CreateVolumeRequest& req) {
    ::csi::v1::CreateVolumeResponse resp;
    return service_.CreateVolume(nullptr, &req, &resp).error_code();
  }

  kube::Client client_;
  metrics::Registry registry_;
  RpcMetrics metrics_;
  NoZeroer zeroer_;
  ControllerService service_;
};

TEST_F(ControllerValidationTest, CreateVolumeRejectsMissingNameAndCapabilities) {
  ::csi::v1::CreateVolumeRequest req;
  *req.add_volume_capabilities() = MountCap();
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_name("v");
  req.clear_volume_capabilities();
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControllerValidationTest, CreateVolumeRejectsUnsupportedCapabilities) {
  ::csi::v1::CreateVolumeRequest req;
  req.set_name("v");
  *req.add_volume_capabilities() = MountCap(VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.clear_volume_capabilities();
  auto cap = MountCap();
  cap.mutable_mount()->set_fs_type("zfs");
  *req.add_volume_capabilities() = cap;
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.clear_volume_capabilities();
  VolumeCapability none;  // neither mount nor block
  none.mutable_access_mode()->set_mode(VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  *req.add_volume_capabilities() = none;
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControllerValidationTest, CreateVolumeRejectsBadSizesParametersAndSources) {
  ::csi::v1::CreateVolumeRequest req;
  req.set_name("v");
  *req.add_volume_capabilities() = MountCap();
  req.mutable_capacity_range()->set_required_bytes(-1);
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.mutable_capacity_range()->set_required_bytes(2 << 20);
  req.mutable_capacity_range()->set_limit_bytes(1 << 20);
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.clear_capacity_range();
  (*req.mutable_parameters())["colour"] = "blue";
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.clear_parameters();
  (*req.mutable_parameters())["transport"] = "nbd";
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.clear_parameters();
  // A clone of another volume is valid: it gets as far as the API server (unreachable here).
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id("other");
  EXPECT_EQ(Create(req), grpc::StatusCode::UNAVAILABLE);
  // Snapshots are not supported; a clone needs its source's id.
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id("snap");
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.mutable_volume_content_source()->mutable_volume()->clear_volume_id();
  EXPECT_EQ(Create(req), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControllerValidationTest, ValidRequestsReachTheApiServer) {
  // The counterpart of the tests above: a valid request gets past validation and fails only
  // because the API server is unreachable.
  ::csi::v1::CreateVolumeRequest req;
  req.set_name("v");
  *req.add_volume_capabilities() = MountCap();
  (*req.mutable_parameters())["csi.storage.k8s.io/pvc/name"] = "ignored";
  EXPECT_EQ(Create(req), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ControllerValidationTest, OtherRpcsRequireTheirArguments) {
  {
    ::csi::v1::DeleteVolumeRequest req;
    ::csi::v1::DeleteVolumeResponse resp;
    EXPECT_EQ(service_.DeleteVolume(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    ::csi::v1::ControllerPublishVolumeRequest req;
    ::csi::v1::ControllerPublishVolumeResponse resp;
    req.set_node_id("n");
    *req.mutable_volume_capability() = MountCap();
    EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    req.set_volume_id("v");
    req.clear_node_id();
    EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    req.set_node_id("n");
    req.clear_volume_capability();
    EXPECT_EQ(service_.ControllerPublishVolume(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    ::csi::v1::ListVolumesRequest req;
    ::csi::v1::ListVolumesResponse resp;
    req.set_starting_token("invalid-token");
    EXPECT_EQ(service_.ListVolumes(nullptr, &req, &resp).error_code(), grpc::StatusCode::ABORTED);
    req.clear_starting_token();
    req.set_max_entries(-1);
    EXPECT_EQ(service_.ListVolumes(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    ::csi::v1::ControllerExpandVolumeRequest req;
    ::csi::v1::ControllerExpandVolumeResponse resp;
    req.set_volume_id("v");
    EXPECT_EQ(service_.ControllerExpandVolume(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    ::csi::v1::ValidateVolumeCapabilitiesRequest req;
    ::csi::v1::ValidateVolumeCapabilitiesResponse resp;
    req.set_volume_id("v");
    EXPECT_EQ(service_.ValidateVolumeCapabilities(nullptr, &req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(ControllerValidationTest, MetricsCountCallsAndErrorsByCode) {
  ::csi::v1::DeleteVolumeRequest req;
  ::csi::v1::DeleteVolumeResponse resp;
  service_.DeleteVolume(nullptr, &req, &resp);
  std::string text = registry_.Serialize();
  EXPECT_NE(text.find(R"(vios_csi_rpc_errors_total{code="INVALID_ARGUMENT",rpc="DeleteVolume"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vios_csi_rpc_duration_seconds_count{rpc=\"DeleteVolume\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace vios::csi
