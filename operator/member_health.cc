// VIOSMember state decisions from the heartbeat Lease (see member_health.h for the rules).
#include "operator/member_health.h"

#include "operator/conditions.h"

namespace vios::op {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string CurrentState(const nlohmann::json& member) {
  const auto& status = member.contains("status") ? member["status"] : nlohmann::json();
  if (status.is_object() && status.contains("state") && status["state"].is_string()) {
    return status["state"].get<std::string>();
  }
  return kJoining;
}

int64_t Generation(const nlohmann::json& obj) {
  const auto& md = obj.value("metadata", nlohmann::json::object());
  return md.contains("generation") && md["generation"].is_number_integer()
             ? md["generation"].get<int64_t>()
             : 0;
}

}  // namespace

LeaseTimes ReadLease(const nlohmann::json& lease, std::chrono::seconds default_duration) {
  LeaseTimes t;
  t.duration = default_duration;
  if (!lease.is_object() || !lease.contains("spec") || !lease["spec"].is_object()) return t;
  const auto& spec = lease["spec"];
  if (spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()) {
    int64_t secs = spec["leaseDurationSeconds"].get<int64_t>();
    if (secs > 0 && secs < 86400) t.duration = std::chrono::seconds(secs);
  }
  if (spec.contains("renewTime")) t.renew = ParseApiTimeField(spec["renewTime"]);
  if (!t.renew && spec.contains("acquireTime")) t.renew = ParseApiTimeField(spec["acquireTime"]);
  return t;
}

MemberDecision DecideMember(const MemberInput& in) {
  MemberDecision d;
  const std::string current = CurrentState(in.member);
  const int64_t generation = Generation(in.member);
  d.conditions = in.member.contains("status") && in.member["status"].is_object()
                     ? in.member["status"].value("conditions", nlohmann::json::array())
                     : nlohmann::json::array();

  std::optional<WallTime> expiry, down_at;
  if (in.lease != nullptr) {
    LeaseTimes lt = ReadLease(*in.lease, in.default_lease_duration);
    if (lt.renew) {
      expiry = *lt.renew + lt.duration;
      down_at = *expiry + in.grace;
    }
  }
  const bool fresh = expiry && in.now < *expiry;
  const bool dead = !down_at || in.now >= *down_at;

  // Heartbeat condition: True until the member is declared Down, so that it changes together
  // with the state (one status write per transition).
  std::string heartbeat_reason, heartbeat_message;
  if (in.lease == nullptr) {
    heartbeat_reason = "LeaseMissing";
    heartbeat_message = "no heartbeat Lease found";
  } else if (!expiry) {
    heartbeat_reason = "LeaseInvalid";
    heartbeat_message = "the heartbeat Lease has no renewTime";
  } else if (dead) {
    heartbeat_reason = "LeaseExpired";
    heartbeat_message =
        "heartbeat Lease not renewed since " +
        FormatMicroTime(*expiry - ReadLease(*in.lease, in.default_lease_duration).duration);
  } else {
    // Stable text: a renewal must not change the status (no write per heartbeat).
    heartbeat_reason = "LeaseRenewed";
    heartbeat_message = "heartbeat Lease renewed within its duration";
  }

  if (current == kLeaving) {
    d.state = kLeaving;
    d.message = "member is leaving";
  } else if (!in.cluster_exists) {
    // Not admitted: keep whatever the member had, but never report it Up.
    d.state = current == kUp ? kDown : current;
    if (current == kUp) d.transition = events::MessageType::kMemberDown;
    d.message = "VIOSCluster not found";
  } else if (current == kUp) {
    if (dead) {
      d.state = kDown;
      d.transition = events::MessageType::kMemberDown;
      d.message = "heartbeat Lease expired: " + heartbeat_message;
    } else {
      d.state = kUp;
      d.message = "heartbeat Lease renewed";
    }
  } else if (current == kDown) {
    if (fresh) {
      d.state = kUp;
      d.transition = events::MessageType::kMemberUp;
      d.message = "heartbeat Lease renewed again";
    } else {
      d.state = kDown;
      d.message = "heartbeat Lease expired";
    }
  } else {  // Joining (or unset)
    if (fresh) {
      d.state = kUp;
      d.transition = events::MessageType::kMemberJoined;
      d.message = "admitted: cluster found and heartbeat Lease fresh";
    } else {
      d.state = kJoining;
      d.message = "waiting for a fresh heartbeat Lease";
    }
  }

  if (d.state == kUp && down_at) {
    d.requeue_after = duration_cast<milliseconds>(*down_at - in.now) + milliseconds(1);
  }
  if (d.state == kLeaving && down_at && in.now < *down_at) {
    d.requeue_after = duration_cast<milliseconds>(*down_at - in.now) + milliseconds(1);
  }

  const std::string cluster = in.member.contains("spec") && in.member["spec"].is_object()
                                  ? in.member["spec"].value("cluster", "")
                                  : "";
  const bool beating = in.lease != nullptr && expiry && !dead;
  SetCondition(&d.conditions,
               {.type = kHeartbeatCondition,
                .status = beating ? "True" : "False",
                .reason = heartbeat_reason,
                .message = heartbeat_message,
                .observed_generation = generation},
               in.now);
  SetCondition(
      &d.conditions,
      {.type = kAdmittedCondition,
       .status = in.cluster_exists ? "True" : "False",
       .reason = in.cluster_exists ? "ClusterFound" : "ClusterNotFound",
       .message = in.cluster_exists ? "member of cluster " + cluster
                                    : "VIOSCluster " + cluster + " not found in this namespace",
       .observed_generation = generation},
      in.now);
  return d;
}

}  // namespace vios::op
