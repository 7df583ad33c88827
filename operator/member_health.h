// The VIOSMember decision: given the member, its heartbeat Lease, whether its cluster exists and
// the time, what status.state and conditions it should have, which cluster message the change is,
// and when to look again. A pure function: the reconciler reads the inputs from its caches and
// writes the result; tests feed it times directly (DESIGN.md §5).
//
//   MemberDecision d = DecideMember({.member = m, .lease = lease, .cluster_exists = true,
//                                    .now = clock(), .grace = std::chrono::seconds(5)});
//   if (d.transition) bus.Publish(...);
//   if (d.requeue_after) queue.AddAfter(key, *d.requeue_after);
//
// Rules (the Lease is coordination.k8s.io/v1; renewTime falls back to acquireTime):
//   expiry  = renewTime + leaseDurationSeconds;   down_at = expiry + grace
//   Joining -> Up      when the cluster exists and now < expiry            (MemberJoined)
//   Up      -> Down    when the Lease is gone or now >= down_at            (MemberDown)
//   Down    -> Up      when the Lease was renewed so that now < expiry     (MemberUp)
//   Leaving            is the agent's own state; the operator keeps it.
// Because down_at > expiry, a member that went Down can only come back through a renewal: the
// state cannot flap on a single stale Lease.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/events/message.h"
#include "operator/api_time.h"

namespace vios::op {

// Member states (VIOSMember.status.state).
inline constexpr const char* kJoining = "Joining";
inline constexpr const char* kUp = "Up";
inline constexpr const char* kDown = "Down";
inline constexpr const char* kLeaving = "Leaving";

// Condition types the operator owns on a VIOSMember.
inline constexpr const char* kAdmittedCondition = "Admitted";
inline constexpr const char* kHeartbeatCondition = "Heartbeat";

struct MemberInput {
  const nlohmann::json& member;
  const nlohmann::json* lease = nullptr;  // nullptr: no Lease found
  bool cluster_exists = false;
  WallTime now{};
  std::chrono::milliseconds grace{0};
  // default_lease_duration applies when the Lease has no leaseDurationSeconds.
  std::chrono::seconds default_lease_duration{40};
};

struct MemberDecision {
  std::string state;                              // desired status.state
  nlohmann::json conditions;                      // the operator's conditions, full list
  std::optional<events::MessageType> transition;  // set when state changes in a reportable way
  std::string message;                            // human-readable reason for the state
  std::optional<std::chrono::milliseconds> requeue_after;  // look again then (lease expiry)
};

// LeaseTimes is what a Lease says about liveness.
struct LeaseTimes {
  std::optional<WallTime> renew;
  std::chrono::seconds duration{0};
};
LeaseTimes ReadLease(const nlohmann::json& lease, std::chrono::seconds default_duration);

MemberDecision DecideMember(const MemberInput& in);

}  // namespace vios::op
