// Tests of the VIOSCluster status aggregation: counts, pools, conditions, stability.
#include "operator/cluster_status.h"

#include <gtest/gtest.h>

#include "operator/conditions.h"
#include "operator/member_health.h"

namespace vios::op {
namespace {

using nlohmann::json;
using std::chrono::seconds;

const WallTime kT0 = *ParseApiTime(std::string_view("2026-11-25T20:00:00Z"));

json Cluster() {
  return json::parse(R"({
    "metadata": {"name": "c1", "namespace": "vios", "generation": 3},
    "spec": {"pools": [{"name": "default", "backends": [
      {"name": "file0", "file": {"path": "/p0.img", "size": "1Gi"}},
      {"name": "file1", "file": {"path": "/p1.img", "size": "1Gi"}}]}]}
  })");
}

json Member(const std::string& name, const std::string& state, const std::string& path0 = "") {
  json m = {{"metadata", {{"name", name}}},
            {"spec", {{"cluster", "c1"}, {"nodeName", "n-" + name}}},
            {"status", {{"state", state}}}};
  if (!path0.empty()) {
    m["status"]["paths"] = {{{"pool", "default"}, {"backend", "file0"}, {"state", path0}},
                            {{"pool", "default"}, {"backend", "file1"}, {"state", "Healthy"}}};
  }
  return m;
}

json Volume(int64_t length) {
  return {{"spec",
           {{"cluster", "c1"},
            {"pool", "default"},
            {"extents", {{{"backend", "file0"}, {"offset", 0}, {"length", length}}}}}}};
}

json ReadyDaemonSet() {
  return json::parse(R"({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
      "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}})");
}

TEST(ClusterStatusTest, AggregatesMembersPoolsAndConditions) {
  json cluster = Cluster();
  std::vector<json> members = {Member("b", kUp, "Healthy"), Member("a", kUp, "Lost"),
                               Member("c", kDown)};
  std::vector<json> volumes = {Volume(64 << 20), Volume(128 << 20)};
  std::vector<FieldProblem> problems;
  json ds = ReadyDaemonSet();
  json s = ComputeClusterStatus({.cluster = cluster,
                                 .members = members,
                                 .volumes = volumes,
                                 .problems = problems,
                                 .daemonset = &ds,
                                 .now = kT0});
  EXPECT_EQ(s["observedGeneration"], 3);
  EXPECT_EQ(s["memberCount"], 3);
  EXPECT_EQ(s["membersUp"], 2);
  EXPECT_EQ(s["members"][0]["name"], "a");  // sorted
  EXPECT_EQ(s["members"][2]["state"], "Down");
  EXPECT_EQ(s["poolCount"], 1);
  const json& pool = s["pools"][0];
  EXPECT_EQ(pool["capacity"], "2Gi");
  EXPECT_EQ(pool["allocated"], "192Mi");
  EXPECT_EQ(pool["free"], "1856Mi");
  EXPECT_EQ(s["free"], "1856Mi");
  EXPECT_EQ(pool["backends"][0]["health"], "Degraded");  // one of two Up members lost it
  EXPECT_EQ(pool["backends"][0]["membersWithPath"], 1);
  EXPECT_EQ(pool["backends"][1]["health"], "Healthy");
  EXPECT_EQ(ConditionStatus(s["conditions"], "Ready"), "True");
  EXPECT_EQ(ConditionStatus(s["conditions"], "Degraded"), "True");
  EXPECT_EQ((*FindCondition(s["conditions"], "Degraded"))["reason"], "MembersDown");
  EXPECT_EQ(ConditionStatus(s["conditions"], "Progressing"), "False");
}

TEST(ClusterStatusTest, InvalidSpecMakesReadyFalseWithTheField) {
  json cluster = Cluster();
  std::vector<json> members = {Member("a", kUp)};
  std::vector<json> volumes;
  std::vector<FieldProblem> problems = {{"spec.virtualPorts.portRange", "overlaps x"}};
  json s = ComputeClusterStatus({.cluster = cluster,
                                 .members = members,
                                 .volumes = volumes,
                                 .problems = problems,
                                 .now = kT0});
  const json* ready = FindCondition(s["conditions"], "Ready");
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ((*ready)["status"], "False");
  EXPECT_EQ((*ready)["reason"], "InvalidSpec");
  EXPECT_EQ((*ready)["message"], "spec.virtualPorts.portRange: overlaps x");
  EXPECT_EQ((*ready)["observedGeneration"], 3);
}

TEST(ClusterStatusTest, ProgressingWhileJoiningOrRollingOut) {
  json cluster = Cluster();
  std::vector<json> joining = {Member("a", kJoining)};
  std::vector<json> none;
  std::vector<FieldProblem> problems;
  json ds = ReadyDaemonSet();
  json s = ComputeClusterStatus({.cluster = cluster,
                                 .members = joining,
                                 .volumes = none,
                                 .problems = problems,
                                 .daemonset = &ds,
                                 .now = kT0});
  EXPECT_EQ((*FindCondition(s["conditions"], "Progressing"))["reason"], "MembersJoining");
  EXPECT_EQ((*FindCondition(s["conditions"], "Ready"))["reason"], "NoMemberUp");
  ds["status"]["updatedNumberScheduled"] = 1;
  s = ComputeClusterStatus({.cluster = cluster,
                            .members = none,
                            .volumes = none,
                            .problems = problems,
                            .daemonset = &ds,
                            .now = kT0});
  EXPECT_EQ((*FindCondition(s["conditions"], "Progressing"))["reason"], "DaemonSetRollingOut");
  s = ComputeClusterStatus(
      {.cluster = cluster, .members = none, .volumes = none, .problems = problems, .now = kT0});
  EXPECT_EQ((*FindCondition(s["conditions"], "Progressing"))["reason"], "DaemonSetMissing");
}

TEST(ClusterStatusTest, RecomputingLaterWithoutChangeIsIdentical) {
  json cluster = Cluster();
  std::vector<json> members = {Member("a", kUp, "Healthy")};
  std::vector<json> volumes;
  std::vector<FieldProblem> problems;
  json ds = ReadyDaemonSet();
  json first = ComputeClusterStatus({.cluster = cluster,
                                     .members = members,
                                     .volumes = volumes,
                                     .problems = problems,
                                     .daemonset = &ds,
                                     .now = kT0});
  cluster["status"] = first;
  json second = ComputeClusterStatus({.cluster = cluster,
                                      .members = members,
                                      .volumes = volumes,
                                      .problems = problems,
                                      .daemonset = &ds,
                                      .now = kT0 + seconds(600)});
  EXPECT_TRUE(StatusEqual(first, second));
  // A real change moves only the changed condition's transition time.
  members.push_back(Member("b", kDown));
  json third = ComputeClusterStatus({.cluster = cluster,
                                     .members = members,
                                     .volumes = volumes,
                                     .problems = problems,
                                     .daemonset = &ds,
                                     .now = kT0 + seconds(700)});
  EXPECT_FALSE(StatusEqual(first, third));
  EXPECT_EQ((*FindCondition(third["conditions"], "Degraded"))["lastTransitionTime"],
            FormatApiTime(kT0 + seconds(700)));
  EXPECT_EQ((*FindCondition(third["conditions"], "Ready"))["lastTransitionTime"],
            FormatApiTime(kT0));
}

TEST(ClusterStatusTest, MemberSummaryIsBounded) {
  json cluster = Cluster();
  std::vector<json> members;
  for (int i = 0; i < 200; ++i) members.push_back(Member("m" + std::to_string(1000 + i), kUp));
  std::vector<json> volumes;
  std::vector<FieldProblem> problems;
  json s = ComputeClusterStatus({.cluster = cluster,
                                 .members = members,
                                 .volumes = volumes,
                                 .problems = problems,
                                 .now = kT0});
  EXPECT_EQ(s["memberCount"], 200);
  EXPECT_EQ(s["members"].size(), kMaxMemberSummary);
}

}  // namespace
}  // namespace vios::op
