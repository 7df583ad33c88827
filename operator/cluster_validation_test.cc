// Tests of VIOSCluster validation beyond the schema: each problem names its field.
#include "operator/cluster_validation.h"

#include <gtest/gtest.h>

namespace vios::op {
namespace {

using nlohmann::json;

json Cluster() {
  return json::parse(R"({
    "metadata": {"name": "c1", "namespace": "vios", "creationTimestamp": "2026-11-25T20:00:00Z"},
    "spec": {"pools": [{"name": "default", "extentSize": "64Mi", "backends": [
      {"name": "file0", "file": {"path": "/var/lib/vios/p0.img", "size": "1Gi"}},
      {"name": "san0", "iscsi": {"portal": "127.0.0.1:3260", "iqn": "iqn.2026-11.dev.test:t1",
                                 "lun": 1, "chapSecretRef": {"name": "san-chap"}}}]}]}
  })");
}

json Secret(json data) { return {{"metadata", {{"name", "san-chap"}}}, {"data", data}}; }

ValidationContext Context(std::optional<json> secret) {
  ValidationContext ctx;
  ctx.secret = [secret](const std::string& ns, const std::string& name) -> std::optional<json> {
    if (ns == "vios" && name == "san-chap") return secret;
    return std::nullopt;
  };
  return ctx;
}

const json kChap = {{"username", "dQ=="}, {"password", "cA=="}};

TEST(ClusterValidationTest, AcceptsValidCluster) {
  EXPECT_TRUE(ValidateClusterSpec(Cluster(), Context(Secret(kChap))).empty());
}

TEST(ClusterValidationTest, MissingChapSecretNamesTheField) {
  auto problems = ValidateClusterSpec(Cluster(), Context(std::nullopt));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "spec.pools[0].backends[1].iscsi.chapSecretRef.name");
  EXPECT_NE(problems[0].message.find("vios/san-chap not found"), std::string::npos);
  EXPECT_TRUE(problems[0].transient);
}

TEST(ClusterValidationTest, ChapSecretWithoutPasswordIsReported) {
  auto problems = ValidateClusterSpec(Cluster(), Context(Secret({{"username", "dQ=="}})));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].message.find("no key password"), std::string::npos);
}

TEST(ClusterValidationTest, PortRangeContainingAgentPortIsReported) {
  json c = Cluster();
  c["spec"]["virtualPorts"] = {{"portRange", {{"min", 7400}, {"max", 7500}}}};
  auto problems = ValidateClusterSpec(c, Context(Secret(kChap)));
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].field, "spec.virtualPorts.portRange");
  EXPECT_NE(problems[0].message.find("peer channel port 7470"), std::string::npos);
  EXPECT_NE(problems[1].message.find("peer data channel port 7471"), std::string::npos);
}

TEST(ClusterValidationTest, OverlapWithOlderClusterIsReportedOnTheYoungerOnly) {
  json older = Cluster();
  older["metadata"]["name"] = "c0";
  older["metadata"]["creationTimestamp"] = "2026-11-25T19:00:00Z";
  older["spec"]["virtualPorts"] = {{"portRange", {{"min", 3290}, {"max", 3310}}}};
  ValidationContext ctx = Context(Secret(kChap));
  ctx.other_clusters = {older};
  auto problems = ValidateClusterSpec(Cluster(), ctx);  // default range 3260-3299
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "spec.virtualPorts.portRange");
  EXPECT_NE(problems[0].message.find("overlaps VIOSCluster vios/c0"), std::string::npos);

  ctx.other_clusters = {Cluster()};
  EXPECT_TRUE(ValidateClusterSpec(older, ctx).empty());
}

TEST(ClusterValidationTest, TwoBackendsOnTheSameStorageAreReported) {
  json c = Cluster();
  c["spec"]["pools"].push_back(json::parse(R"({"name": "second", "backends": [
      {"name": "again", "file": {"path": "/var/lib/vios/p0.img", "size": "1Gi"}}]})"));
  auto problems = ValidateClusterSpec(c, Context(Secret(kChap)));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "spec.pools[1].backends[0]");
  EXPECT_NE(problems[0].message.find("spec.pools[0].backends[0]"), std::string::npos);
}

TEST(ClusterValidationTest, FileSmallerThanExtentIsReported) {
  json c = Cluster();
  c["spec"]["pools"][0]["backends"][0]["file"]["size"] = "32Mi";
  auto problems = ValidateClusterSpec(c, Context(Secret(kChap)));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "spec.pools[0].backends[0].file.size");
}

TEST(ClusterValidationTest, BackendUsedByVolumeMustStayDefined) {
  ValidationContext ctx = Context(Secret(kChap));
  ctx.volumes = {json::parse(R"({"metadata": {"name": "pvc-1", "namespace": "vios"},
      "spec": {"cluster": "c1", "pool": "default", "extents": [
        {"backend": "gone", "offset": 0, "length": 67108864}]}})"),
                 json::parse(R"({"metadata": {"name": "pvc-2", "namespace": "vios"},
      "spec": {"cluster": "c1", "pool": "nopool", "extents": []}})"),
                 json::parse(R"({"metadata": {"name": "pvc-3", "namespace": "vios"},
      "spec": {"cluster": "c1", "pool": "default", "extents": [
        {"backend": "file0", "offset": 1073741824, "length": 67108864}]}})")};
  auto problems = ValidateClusterSpec(Cluster(), ctx);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].field, "spec.pools[0].backends");
  EXPECT_NE(problems[0].message.find("\"gone\" is used by VIOSVolume vios/pvc-1"),
            std::string::npos);
  EXPECT_EQ(problems[1].field, "spec.pools");
  EXPECT_EQ(problems[2].field, "spec.pools[0].backends[0].file.size");
  EXPECT_NE(FormatProblems(problems).find("; "), std::string::npos);
}

}  // namespace
}  // namespace vios::op
