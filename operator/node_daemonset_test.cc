// Tests of the node DaemonSet manifest: containers, privileges, rollout, ownership, hashing.
#include "operator/node_daemonset.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace vios::op {
namespace {

using nlohmann::json;

json Cluster() {
  return json::parse(R"({"apiVersion": "vios.dev/v1alpha1", "kind": "VIOSCluster",
    "metadata": {"name": "c1", "namespace": "vios", "uid": "u-1"},
    "spec": {"pools": [{"name": "default", "backends": [
      {"name": "file0", "file": {"path": "/var/lib/pool/p0.img", "size": "1Gi"}}]}],
      "agents": {"image": "example/vios:1", "nodeSelector": {"vios": "yes"}}}})");
}

const json* Container(const json& ds, const std::string& name) {
  for (const json& c : ds["spec"]["template"]["spec"]["containers"]) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

TEST(NodeDaemonSetTest, HasAgentPluginAndRegistrarOnHostNetwork) {
  json ds = BuildNodeDaemonSet(Cluster(), {});
  EXPECT_EQ(ds["metadata"]["name"], "c1-node");
  EXPECT_EQ(ds["metadata"]["namespace"], "vios");
  const json& pod = ds["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["hostNetwork"].get<bool>());
  EXPECT_EQ(pod["nodeSelector"]["vios"], "yes");
  ASSERT_NE(Container(ds, "vios-agent"), nullptr);
  ASSERT_NE(Container(ds, "vios-csi-node"), nullptr);
  ASSERT_NE(Container(ds, "node-driver-registrar"), nullptr);
  EXPECT_EQ((*Container(ds, "vios-agent"))["image"], "example/vios:1");
  // The data channel for rerouted I/O has a fixed port, as the peer channel does (firewalls).
  const json& args = (*Container(ds, "vios-agent"))["args"];
  EXPECT_NE(std::find(args.begin(), args.end(), "--peer-data-port=7471"), args.end()) << args;
}

TEST(NodeDaemonSetTest, AgentIsNotPrivilegedAndRegistrarHasNoCapabilities) {
  json ds = BuildNodeDaemonSet(Cluster(), {});
  const json& agent = (*Container(ds, "vios-agent"))["securityContext"];
  EXPECT_FALSE(agent["privileged"].get<bool>());
  EXPECT_FALSE(agent["allowPrivilegeEscalation"].get<bool>());
  EXPECT_EQ(agent["capabilities"]["add"], json::array({"SYS_ADMIN"}));
  EXPECT_EQ(agent["capabilities"]["drop"], json::array({"ALL"}));
  const json& reg = (*Container(ds, "node-driver-registrar"))["securityContext"];
  EXPECT_FALSE(reg.contains("privileged"));
  EXPECT_FALSE(reg["capabilities"].contains("add"));
  // The file backend's directory is mounted into the agent.
  bool mounted = false;
  for (const json& m : (*Container(ds, "vios-agent"))["volumeMounts"]) {
    mounted |= m["mountPath"] == "/var/lib/pool";
  }
  EXPECT_TRUE(mounted);
}

TEST(NodeDaemonSetTest, RollsOutWithSurgeAndIsOwnedByTheCluster) {
  json ds = BuildNodeDaemonSet(Cluster(), {});
  const json& ru = ds["spec"]["updateStrategy"]["rollingUpdate"];
  EXPECT_EQ(ru["maxSurge"], 1);
  EXPECT_EQ(ru["maxUnavailable"], 0);
  const json& owner = ds["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["kind"], "VIOSCluster");
  EXPECT_EQ(owner["uid"], "u-1");
  EXPECT_TRUE(owner["controller"].get<bool>());
}

TEST(NodeDaemonSetTest, HashChangesWithSpecOnly) {
  json a = BuildNodeDaemonSet(Cluster(), {});
  json b = BuildNodeDaemonSet(Cluster(), {});
  EXPECT_EQ(a["metadata"]["annotations"][kSpecHashAnnotation],
            b["metadata"]["annotations"][kSpecHashAnnotation]);
  json changed = Cluster();
  changed["spec"]["agents"]["image"] = "example/vios:2";
  json c = BuildNodeDaemonSet(changed, {});
  EXPECT_NE(a["metadata"]["annotations"][kSpecHashAnnotation],
            c["metadata"]["annotations"][kSpecHashAnnotation]);
}

}  // namespace
}  // namespace vios::op
