// VIOSCluster reconciler: validates the spec beyond the schema, applies the node DaemonSet,
// keeps the peer CA, and aggregates members, pools and the rollout into status with
// observedGeneration and Ready / Degraded / Progressing conditions. It owns the whole status and
// writes it (PUT with the cached resourceVersion) only when the computed status differs from the
// stored one, so a steady cluster causes no writes.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "common/kube/event_recorder.h"
#include "operator/api_time.h"
#include "operator/caches.h"
#include "operator/controller.h"
#include "operator/node_daemonset.h"
#include "operator/operator_metrics.h"
#include "operator/peer_tls.h"

namespace vios::op {

struct ClusterReconcilerOptions {
  NodeDaemonSetOptions daemonset;
  // recheck: how soon to look again while a problem may fix itself (a Secret created later).
  std::chrono::milliseconds recheck{std::chrono::seconds(30)};
};

class VIOSClusterReconciler {
 public:
  VIOSClusterReconciler(kube::Client& client, Caches caches, PeerTls& tls,
                        kube::EventRecorder* recorder, OperatorMetrics* metrics,
                        ClusterReconcilerOptions options, WallClock clock,
                        std::function<bool()> is_leader);

  ReconcileResult Reconcile(const std::string& key);

 private:
  // EnsureDaemonSet applies the DaemonSet when missing or its spec hash changed; returns it.
  std::optional<nlohmann::json> EnsureDaemonSet(const nlohmann::json& cluster);
  std::optional<nlohmann::json> GetSecret(const std::string& ns, const std::string& name);

  kube::Client& client_;
  Caches caches_;
  PeerTls& tls_;
  kube::EventRecorder* recorder_;
  OperatorMetrics* metrics_;
  const ClusterReconcilerOptions options_;
  WallClock clock_;
  std::function<bool()> is_leader_;
};

}  // namespace vios::op
