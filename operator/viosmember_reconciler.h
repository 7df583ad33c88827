// VIOSMember reconciler: admits registering agents and tracks their heartbeat Lease (the rules
// are in member_health.h). It writes only status.state and its own conditions (Admitted,
// Heartbeat), by server-side apply as field manager "vios-operator", with the cached
// resourceVersion as precondition; the agent owns every other status field. It publishes
// MemberJoined / MemberDown / MemberUp on the event bus, issues the member's peer certificate,
// and asks to be called again at the moment the Lease would expire.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/events/event_bus.h"
#include "operator/api_time.h"
#include "operator/caches.h"
#include "operator/controller.h"
#include "operator/operator_metrics.h"
#include "operator/peer_tls.h"

namespace vios::op {

struct MemberReconcilerOptions {
  std::chrono::milliseconds grace{std::chrono::seconds(5)};
  // ca_wait: how soon to look again when the cluster's CA Secret is not there yet.
  std::chrono::milliseconds ca_wait{std::chrono::seconds(2)};
};

class VIOSMemberReconciler {
 public:
  VIOSMemberReconciler(kube::Client& client, Caches caches, events::EventBus& bus, PeerTls& tls,
                       OperatorMetrics* metrics, MemberReconcilerOptions options, WallClock clock,
                       std::function<bool()> is_leader);

  ReconcileResult Reconcile(const std::string& key);

 private:
  void UpdateMemberGauge();

  kube::Client& client_;
  Caches caches_;
  events::EventBus& bus_;
  PeerTls& tls_;
  OperatorMetrics* metrics_;
  const MemberReconcilerOptions options_;
  WallClock clock_;
  std::function<bool()> is_leader_;
};

}  // namespace vios::op
