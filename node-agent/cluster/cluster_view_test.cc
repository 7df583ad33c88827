// Tests of the cluster view: mapping API objects onto the agent's structures, and the diff
// that becomes bus messages.
#include "node-agent/cluster/cluster_view.h"

#include <gtest/gtest.h>

namespace vios::agent::cluster {
namespace {

using events::MessageType;
using nlohmann::json;

json Cluster(const std::string& size = "4Gi", int64_t generation = 1) {
  return {{"metadata", {{"name", "local"}, {"namespace", "vios"}, {"generation", generation}}},
          {"spec",
           {{"pools",
             {{{"name", "default"},
               {"extentSize", "64Mi"},
               {"backends",
                {{{"name", "file0"}, {"file", {{"path", "/var/lib/p0.img"}, {"size", size}}}},
                 {{"name", "san0"},
                  {"iscsi",
                   {{"portal", "127.0.0.1:3260"}, {"iqn", "iqn.2026-11.x:t"}, {"lun", 2}}}}}}}}}}}};
}

json Member(const std::string& name, const std::string& state,
            const std::string& cluster = "local") {
  return {{"metadata", {{"name", name}}},
          {"spec", {{"cluster", cluster}, {"nodeName", name}}},
          {"status", {{"state", state}, {"peerAddress", "127.0.0.9:7443"}}}};
}

json Volume(const std::string& name, const std::string& agent, const std::string& node = "") {
  json att = {{"node", node.empty() ? agent : node},
              {"virtualPortIQN", "iqn.2026-11.dev.vios:" + name}};
  if (!agent.empty()) {
    att["agent"] = agent;
  }
  return {{"metadata", {{"name", name}}},
          {"spec",
           {{"cluster", "local"},
            {"pool", "default"},
            {"size", "128Mi"},
            {"extents",
             {{{"backend", "file0"}, {"offset", 0}, {"length", 67108864}},
              {{"backend", "file0"}, {"offset", 134217728}, {"length", 67108864}}}}}},
          {"status", {{"attachments", {att}}}}};
}

std::vector<MessageType> Types(const std::vector<events::Message>& msgs) {
  std::vector<MessageType> out;
  for (const auto& m : msgs) {
    out.push_back(m.type);
  }
  return out;
}

TEST(ClusterViewTest, MapsClusterSpecOntoPoolConfig) {
  std::vector<std::string> errors;
  ClusterConfig c = ParseClusterConfig(Cluster(), &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(c.pools.size(), 1u);
  EXPECT_EQ(c.pools[0].name, "default");
  EXPECT_EQ(c.pools[0].extent_size, 64ull << 20);
  ASSERT_EQ(c.pools[0].backends.size(), 2u);
  ASSERT_TRUE(c.pools[0].backends[0].file.has_value());
  EXPECT_EQ(c.pools[0].backends[0].file->size, 4ull << 30);
  ASSERT_TRUE(c.pools[0].backends[1].iscsi.has_value());
  EXPECT_EQ(c.pools[0].backends[1].iscsi->lun, 2u);
}

TEST(ClusterViewTest, BadQuantityIsReportedWithFieldPath) {
  std::vector<std::string> errors;
  ClusterConfig c = ParseClusterConfig(Cluster("lots"), &errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("spec.pools[0].backends[0].file.size"), std::string::npos) << errors[0];
  EXPECT_EQ(c.pools[0].backends.size(), 1u);  // the good backend is kept
}

TEST(ClusterViewTest, BuildViewSelectsPeersAndServedVolumes) {
  ClusterView v = BuildView(
      Cluster(),
      {Member("node-a", "Up"), Member("node-b", "Joining"), Member("node-x", "Up", "other")},
      {Volume("pvc-1", "node-a"), Volume("pvc-2", "node-b"), Volume("pvc-3", "", "node-a")},
      "local", "node-a", ClusterView::Origin::kApiServer);
  EXPECT_EQ(v.self_state, "Up");
  ASSERT_EQ(v.peers.size(), 1u);
  EXPECT_EQ(v.peers.at("node-b").peer_address, "127.0.0.9:7443");
  ASSERT_EQ(v.volumes.size(), 2u);  // pvc-1 by agent, pvc-3 by node (no agent named)
  const ServedVolume& pvc1 = v.volumes.at("pvc-1");
  EXPECT_EQ(pvc1.size, 128ull << 20);
  ASSERT_EQ(pvc1.extents.size(), 2u);
  EXPECT_EQ(pvc1.extents[1].offset, 134217728u);
  EXPECT_EQ(pvc1.virtual_port_iqns, std::vector<std::string>{"iqn.2026-11.dev.vios:pvc-1"});
  VolumeConfig vc = pvc1.ToVolumeConfig();
  EXPECT_EQ(vc.pool, "default");
  EXPECT_EQ(vc.extents.size(), 2u);
}

TEST(ClusterViewTest, DiffFromEmptyAnnouncesEverything) {
  ClusterView v =
      BuildView(Cluster(), {Member("node-a", "Up"), Member("node-b", "Down")},
                {Volume("pvc-1", "node-a")}, "local", "node-a", ClusterView::Origin::kLocalCopy);
  auto msgs = DiffViews(ClusterView{}, v, "node-a");
  EXPECT_EQ(Types(msgs),
            (std::vector<MessageType>{MessageType::kConfigChanged, MessageType::kMemberJoined,
                                      MessageType::kMemberDown, MessageType::kVolumeAttached}));
  EXPECT_EQ(msgs[0].attributes.at("origin"), "local-copy");
  EXPECT_EQ(msgs[1].subject, "member/node-b");
  for (const auto& m : msgs) {
    EXPECT_EQ(m.source, "node-a");
  }
}

TEST(ClusterViewTest, DiffOfEqualViewsIsEmpty) {
  auto a = BuildView(Cluster(), {Member("node-b", "Up")}, {Volume("pvc-1", "node-a")}, "local",
                     "node-a", ClusterView::Origin::kLocalCopy);
  auto b = BuildView(Cluster(), {Member("node-b", "Up")}, {Volume("pvc-1", "node-a")}, "local",
                     "node-a", ClusterView::Origin::kApiServer);
  EXPECT_TRUE(DiffViews(a, b, "node-a").empty());
}

TEST(ClusterViewTest, DiffReportsEachKindOfChange) {
  auto a = BuildView(Cluster("4Gi", 1), {Member("node-b", "Up"), Member("node-c", "Up")},
                     {Volume("pvc-1", "node-a"), Volume("pvc-2", "node-a")}, "local", "node-a",
                     ClusterView::Origin::kApiServer);
  json pvc2 = Volume("pvc-2", "node-a");
  pvc2["status"]["reservation"] = {{"generation", 3}};
  auto b = BuildView(Cluster("8Gi", 2), {Member("node-b", "Down"), Member("node-d", "Joining")},
                     {pvc2, Volume("pvc-3", "node-a")}, "local", "node-a",
                     ClusterView::Origin::kApiServer);
  auto msgs = DiffViews(a, b, "node-a");
  EXPECT_EQ(Types(msgs),
            (std::vector<MessageType>{MessageType::kConfigChanged, MessageType::kMemberDown,
                                      MessageType::kMemberJoined, MessageType::kMemberLeft,
                                      MessageType::kReservationChanged,
                                      MessageType::kVolumeAttached, MessageType::kVolumeDetached}));
  EXPECT_EQ(msgs[0].attributes.at("generation"), "2");
  EXPECT_EQ(msgs[5].subject, "volume/pvc-3");
  EXPECT_EQ(msgs[6].subject, "volume/pvc-1");
  // And back up.
  auto c = b;
  c.peers["node-b"].state = "Up";
  auto up = DiffViews(b, c, "node-a");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].type, MessageType::kMemberUp);
}

TEST(ClusterViewTest, StatusOnlyClusterUpdateIsNotAConfigChange) {
  json c1 = Cluster();
  json c2 = Cluster();
  c2["metadata"]["resourceVersion"] = "999";
  c2["status"] = {{"memberCount", 3}};
  auto a = BuildView(c1, {}, {}, "local", "node-a", ClusterView::Origin::kApiServer);
  auto b = BuildView(c2, {}, {}, "local", "node-a", ClusterView::Origin::kApiServer);
  EXPECT_TRUE(DiffViews(a, b, "node-a").empty());
}

TEST(ClusterViewTest, TrimObjectDropsManagedFields) {
  json o = Member("node-b", "Up");
  o["metadata"]["managedFields"] = json::array({{{"manager", "x"}}});
  o["metadata"]["resourceVersion"] = "12";
  json t = TrimObject(o);
  EXPECT_FALSE(t["metadata"].contains("managedFields"));
  EXPECT_EQ(t["metadata"]["resourceVersion"], "12");
  EXPECT_EQ(t["spec"], o["spec"]);
}

}  // namespace
}  // namespace vios::agent::cluster
