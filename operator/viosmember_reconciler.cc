// VIOSMember reconcile (see viosmember_reconciler.h).
#include "operator/viosmember_reconciler.h"

#include <algorithm>
#include <map>

#include "common/log/log.h"
#include "operator/conditions.h"
#include "operator/member_events.h"
#include "operator/member_health.h"

namespace vios::op {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// OperatorConditions keeps only the condition types this reconciler owns.
json OperatorConditions(const json& conditions) {
  json out = json::array();
  for (const char* type : {kAdmittedCondition, kHeartbeatCondition}) {
    if (const json* c = FindCondition(conditions, type)) out.push_back(*c);
  }
  return out;
}

}  // namespace

VIOSMemberReconciler::VIOSMemberReconciler(kube::Client& client, Caches caches,
                                           events::EventBus& bus, PeerTls& tls,
                                           OperatorMetrics* metrics,
                                           MemberReconcilerOptions options, WallClock clock,
                                           std::function<bool()> is_leader)
    : client_(client),
      caches_(caches),
      bus_(bus),
      tls_(tls),
      metrics_(metrics),
      options_(options),
      clock_(std::move(clock)),
      is_leader_(std::move(is_leader)) {}

void VIOSMemberReconciler::UpdateMemberGauge() {
  if (metrics_ == nullptr) return;
  std::map<std::string, int> by_state;
  for (const json& m : caches_.members.List()) {
    std::string state = kJoining;
    if (m.contains("status") && m["status"].is_object()) {
      state = m["status"].value("state", std::string(kJoining));
    }
    ++by_state[state];
  }
  metrics_->SetMembers(by_state);
}

ReconcileResult VIOSMemberReconciler::Reconcile(const std::string& key) {
  ReconcileResult result;
  if (!is_leader_()) return result;  // a standby replica never acts
  std::optional<json> cached = caches_.members.GetByKey(key);
  UpdateMemberGauge();
  if (!cached) return result;  // deleted: its Secret goes with it (owner reference)
  json member = WithTypeMeta(*cached, "vios.dev/v1alpha1", "VIOSMember");
  if (!member.contains("spec") || !member["spec"].is_object()) return result;
  const std::string ns = member["metadata"].value("namespace", "");
  const std::string name = member["metadata"].value("name", "");
  const std::string cluster = member["spec"].value("cluster", "");

  std::optional<json> lease = caches_.leases.Get(ns, name);
  const bool cluster_exists = caches_.clusters.Get(ns, cluster).has_value();
  const WallTime now = clock_();
  MemberDecision d = DecideMember({.member = member,
                                   .lease = lease ? &*lease : nullptr,
                                   .cluster_exists = cluster_exists,
                                   .now = now,
                                   .grace = options_.grace});

  const json& status =
      member.contains("status") && member["status"].is_object() ? member["status"] : json::object();
  const std::string current_state = status.value("state", "");
  const json current_conditions = OperatorConditions(status.value("conditions", json::array()));
  const json desired_conditions = OperatorConditions(d.conditions);
  if (current_state != d.state || current_conditions != desired_conditions) {
    json apply = {{"apiVersion", "vios.dev/v1alpha1"},
                  {"kind", "VIOSMember"},
                  {"metadata",
                   {{"name", name},
                    {"namespace", ns},
                    {"resourceVersion", member["metadata"].value("resourceVersion", "")}}},
                  {"status", {{"state", d.state}, {"conditions", desired_conditions}}}};
    client_.ApplyStatus(kube::resources::kVIOSMembers, ns, name, apply, kOperatorFieldManager,
                        true);
    if (metrics_ != nullptr) metrics_->StatusWrite("VIOSMember");
    if (d.transition) bus_.Publish(MemberMessage(*d.transition, member, d.message));
  }

  if (cluster_exists) {
    std::optional<WallTime> renew = tls_.EnsureMemberCertificate(member);
    if (!renew) {
      result.requeue_after = options_.ca_wait;
    } else {
      auto until = std::chrono::duration_cast<milliseconds>(*renew - now);
      result.requeue_after = std::max(until, milliseconds(1000));
    }
  }
  if (d.requeue_after) {
    result.requeue_after =
        result.requeue_after ? std::min(*result.requeue_after, *d.requeue_after) : *d.requeue_after;
  }
  return result;
}

}  // namespace vios::op
