// Tests of the VIOSMember state decisions with an injected clock.
#include "operator/member_health.h"

#include <gtest/gtest.h>

#include "operator/conditions.h"

namespace vios::op {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

const WallTime kT0 = *ParseApiTime(std::string_view("2026-11-25T20:00:00Z"));

json Member(const std::string& state) {
  json m = {{"metadata", {{"name", "node-a"}, {"namespace", "vios"}, {"generation", 1}}},
            {"spec", {{"cluster", "c1"}, {"nodeName", "node-a"}}}};
  if (!state.empty()) m["status"] = {{"state", state}};
  return m;
}

json Lease(WallTime renew, int duration_seconds = 10) {
  return {{"metadata", {{"name", "node-a"}, {"namespace", "vios"}}},
          {"spec",
           {{"holderIdentity", "node-a"},
            {"leaseDurationSeconds", duration_seconds},
            {"renewTime", FormatMicroTime(renew)}}}};
}

MemberDecision Decide(const json& member, const json* lease, WallTime now, bool cluster = true) {
  return DecideMember({.member = member,
                       .lease = lease,
                       .cluster_exists = cluster,
                       .now = now,
                       .grace = seconds(5)});
}

TEST(MemberHealthTest, AdmitsJoiningMemberWithFreshLease) {
  json lease = Lease(kT0);
  MemberDecision d = Decide(Member(""), &lease, kT0 + seconds(1));
  EXPECT_EQ(d.state, kUp);
  ASSERT_TRUE(d.transition);
  EXPECT_EQ(*d.transition, events::MessageType::kMemberJoined);
  // Look again exactly when the member would be declared Down: renew + 10 s + 5 s grace.
  ASSERT_TRUE(d.requeue_after);
  EXPECT_EQ(*d.requeue_after, seconds(14) + milliseconds(1));
  EXPECT_EQ(ConditionStatus(d.conditions, kAdmittedCondition), "True");
  EXPECT_EQ(ConditionStatus(d.conditions, kHeartbeatCondition), "True");
}

TEST(MemberHealthTest, KeepsJoiningWithoutLeaseOrCluster) {
  MemberDecision no_lease = Decide(Member(kJoining), nullptr, kT0);
  EXPECT_EQ(no_lease.state, kJoining);
  EXPECT_FALSE(no_lease.transition);
  EXPECT_FALSE(no_lease.requeue_after);
  EXPECT_EQ((*FindCondition(no_lease.conditions, kHeartbeatCondition))["reason"], "LeaseMissing");

  json lease = Lease(kT0);
  MemberDecision no_cluster = Decide(Member(kJoining), &lease, kT0, /*cluster=*/false);
  EXPECT_EQ(no_cluster.state, kJoining);
  EXPECT_EQ((*FindCondition(no_cluster.conditions, kAdmittedCondition))["reason"],
            "ClusterNotFound");

  json stale = Lease(kT0 - seconds(11));
  EXPECT_EQ(Decide(Member(kJoining), &stale, kT0).state, kJoining);
}

TEST(MemberHealthTest, StaysUpThroughGraceThenGoesDown) {
  json lease = Lease(kT0);
  // Expired at +10 s but within the 5 s grace: still Up, requeued for the down moment.
  MemberDecision in_grace = Decide(Member(kUp), &lease, kT0 + seconds(12));
  EXPECT_EQ(in_grace.state, kUp);
  EXPECT_FALSE(in_grace.transition);
  EXPECT_EQ(*in_grace.requeue_after, seconds(3) + milliseconds(1));

  MemberDecision down = Decide(Member(kUp), &lease, kT0 + seconds(15));
  EXPECT_EQ(down.state, kDown);
  ASSERT_TRUE(down.transition);
  EXPECT_EQ(*down.transition, events::MessageType::kMemberDown);
  EXPECT_FALSE(down.requeue_after);
  EXPECT_EQ(ConditionStatus(down.conditions, kHeartbeatCondition), "False");
}

TEST(MemberHealthTest, LeaseDeletedMeansDown) {
  MemberDecision d = Decide(Member(kUp), nullptr, kT0);
  EXPECT_EQ(d.state, kDown);
  EXPECT_EQ(*d.transition, events::MessageType::kMemberDown);
}

TEST(MemberHealthTest, ComesBackUpOnlyAfterRenewal) {
  json old_lease = Lease(kT0);
  MemberDecision still_down = Decide(Member(kDown), &old_lease, kT0 + seconds(20));
  EXPECT_EQ(still_down.state, kDown);
  EXPECT_FALSE(still_down.transition);

  json renewed = Lease(kT0 + seconds(19));
  MemberDecision up = Decide(Member(kDown), &renewed, kT0 + seconds(20));
  EXPECT_EQ(up.state, kUp);
  EXPECT_EQ(*up.transition, events::MessageType::kMemberUp);
}

TEST(MemberHealthTest, LeavingIsTheAgentsState) {
  json lease = Lease(kT0);
  EXPECT_EQ(Decide(Member(kLeaving), &lease, kT0 + seconds(100)).state, kLeaving);
  EXPECT_FALSE(Decide(Member(kLeaving), &lease, kT0 + seconds(100)).transition);
}

TEST(MemberHealthTest, UnchangedInputsGiveIdenticalConditions) {
  // A renewal must not change the status: no write per heartbeat.
  json lease1 = Lease(kT0);
  MemberDecision first = Decide(Member(""), &lease1, kT0 + seconds(1));
  json member = Member(kUp);
  member["status"]["conditions"] = first.conditions;
  json lease2 = Lease(kT0 + seconds(5));
  MemberDecision second = Decide(member, &lease2, kT0 + seconds(6));
  EXPECT_EQ(second.state, kUp);
  EXPECT_EQ(second.conditions, first.conditions);
}

TEST(MemberHealthTest, GarbageLeaseDoesNotCrashAndIsNotFresh) {
  json garbage = {{"spec", {{"renewTime", "not a time"}, {"leaseDurationSeconds", "x"}}}};
  MemberDecision d = Decide(Member(kUp), &garbage, kT0);
  EXPECT_EQ(d.state, kDown);
  EXPECT_EQ((*FindCondition(d.conditions, kHeartbeatCondition))["reason"], "LeaseInvalid");
  json not_object = json::array();
  EXPECT_EQ(Decide(Member(kJoining), &not_object, kT0).state, kJoining);
}

}  // namespace
}  // namespace vios::op
