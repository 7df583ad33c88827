// proto_test: each generated proto library links, and its messages survive a wire round trip.
#include <gtest/gtest.h>

#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <string>

#include "proto/agent.grpc.pb.h"
#include "proto/agent.pb.h"
#include "proto/csi.grpc.pb.h"
#include "proto/csi.pb.h"
#include "proto/peer.grpc.pb.h"
#include "proto/peer.pb.h"

namespace {

// FindMethod looks a method up in the generated descriptor pool ("csi.v1.Node", "NodeStageVolume").
const google::protobuf::MethodDescriptor* FindMethod(const std::string& service,
                                                     const std::string& method) {
  const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  return svc == nullptr ? nullptr : svc->FindMethodByName(method);
}

TEST(AgentProtoTest, CreateVirtualPortRequestRoundTrips) {
  vios::agent::v1::CreateVirtualPortRequest req;
  req.set_name("pvc-1-node-a");
  req.set_volume_id("pvc-1");
  req.set_size_bytes(3ull << 30);
  req.set_pool("pool0");
  auto* e = req.add_extents();
  e->set_backend("lun0");
  e->set_offset(1ull << 30);
  e->set_length(3ull << 30);
  req.set_transport(vios::agent::v1::ATTACH_TRANSPORT_FUSE);
  req.add_allowed_initiators("iqn.2026-11.dev.vios:pod-a");
  req.mutable_chap()->set_user("u");
  req.mutable_chap()->set_secret("0123456789ab");

  std::string wire;
  ASSERT_TRUE(req.SerializeToString(&wire));
  vios::agent::v1::CreateVirtualPortRequest back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.name(), "pvc-1-node-a");
  EXPECT_EQ(back.size_bytes(), 3ull << 30);
  ASSERT_EQ(back.extents_size(), 1);
  EXPECT_EQ(back.extents(0).offset(), 1ull << 30);
  EXPECT_EQ(back.transport(), vios::agent::v1::ATTACH_TRANSPORT_FUSE);
  EXPECT_EQ(back.chap().secret(), "0123456789ab");
  // The service descriptor is present with the expected methods.
  EXPECT_NE(FindMethod("vios.agent.v1.Agent", "CreateVirtualPort"), nullptr);
  EXPECT_NE(FindMethod("vios.agent.v1.Agent", "AgentInfo"), nullptr);
  EXPECT_EQ(FindMethod("vios.agent.v1.Agent", "NoSuchCall"), nullptr);
  // The gRPC stub links (the channel connects lazily; nothing is dialled here).
  auto channel =
      grpc::CreateChannel("unix:/nonexistent/vios-agent.sock", grpc::InsecureChannelCredentials());
  EXPECT_NE(vios::agent::v1::Agent::NewStub(channel), nullptr);
}

TEST(PeerProtoTest, ClusterMessageAndIoRoundTrip) {
  vios::peer::v1::ClusterMessage msg;
  msg.set_type("PathLost");
  msg.set_source("node-a");
  msg.set_sequence(42);
  (*msg.mutable_attributes())["backend"] = "lun0";
  std::string wire;
  ASSERT_TRUE(msg.SerializeToString(&wire));
  vios::peer::v1::ClusterMessage back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.sequence(), 42u);
  EXPECT_EQ(back.attributes().at("backend"), "lun0");

  vios::peer::v1::IoRequest io;
  io.set_op(vios::peer::v1::IO_OP_WRITE);
  io.set_data(std::string(4096, '\x5a'));
  ASSERT_TRUE(io.SerializeToString(&wire));
  vios::peer::v1::IoRequest io_back;
  ASSERT_TRUE(io_back.ParseFromString(wire));
  EXPECT_EQ(io_back.data().size(), 4096u);
  EXPECT_NE(FindMethod("vios.peer.v1.Peer", "ExecuteIo"), nullptr);
}

TEST(CsiProtoTest, NodeStageRequestRoundTripsAndSpecVersionIsPinned) {
  csi::v1::NodeStageVolumeRequest req;
  req.set_volume_id("pvc-1");
  req.set_staging_target_path("/var/lib/kubelet/staging/pvc-1");
  (*req.mutable_secrets())["chap"] = "s";
  req.mutable_volume_capability()->mutable_mount()->set_fs_type("ext4");
  std::string wire;
  ASSERT_TRUE(req.SerializeToString(&wire));
  csi::v1::NodeStageVolumeRequest back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.volume_capability().mount().fs_type(), "ext4");
  // Services of CSI v1.x.
  EXPECT_NE(FindMethod("csi.v1.Node", "NodeStageVolume"), nullptr);
  EXPECT_NE(FindMethod("csi.v1.Controller", "CreateVolume"), nullptr);
  EXPECT_NE(FindMethod("csi.v1.Identity", "GetPluginInfo"), nullptr);
  // ControllerModifyVolume exists only in recent specs (v1.9+): proves the pinned spec is used.
  EXPECT_NE(FindMethod("csi.v1.Controller", "ControllerModifyVolume"), nullptr);
}

}  // namespace
