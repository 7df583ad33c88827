// VIOSCluster reconcile (see vioscluster_reconciler.h).
#include "operator/vioscluster_reconciler.h"

#include <algorithm>

#include "common/kube/errors.h"
#include "common/log/log.h"
#include "operator/cluster_status.h"
#include "operator/cluster_validation.h"
#include "operator/conditions.h"

namespace vios::op {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::string HashOf(const json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("annotations")) return "";
  return obj["metadata"]["annotations"].value(kSpecHashAnnotation, "");
}

}  // namespace

VIOSClusterReconciler::VIOSClusterReconciler(kube::Client& client, Caches caches, PeerTls& tls,
                                             kube::EventRecorder* recorder,
                                             OperatorMetrics* metrics,
                                             ClusterReconcilerOptions options, WallClock clock,
                                             std::function<bool()> is_leader)
    : client_(client),
      caches_(caches),
      tls_(tls),
      recorder_(recorder),
      metrics_(metrics),
      options_(std::move(options)),
      clock_(std::move(clock)),
      is_leader_(std::move(is_leader)) {}

std::optional<json> VIOSClusterReconciler::GetSecret(const std::string& ns,
                                                     const std::string& name) {
  try {
    return client_.Get(kube::resources::kSecrets, ns, name);
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kNotFound) return std::nullopt;
    throw;
  }
}

std::optional<json> VIOSClusterReconciler::EnsureDaemonSet(const json& cluster) {
  json desired = BuildNodeDaemonSet(cluster, options_.daemonset);
  const std::string ns = desired["metadata"]["namespace"];
  const std::string name = desired["metadata"]["name"];
  std::optional<json> existing = caches_.daemonsets.Get(ns, name);
  if (existing && HashOf(*existing) == HashOf(desired)) return existing;
  json applied = client_.Apply(kDaemonSets, ns, name, desired, kOperatorFieldManager, true);
  VIOS_LOG(kInfo, existing ? "node DaemonSet updated" : "node DaemonSet created")
      .Field("namespace", ns)
      .Field("daemonset", name)
      .Field("hash", HashOf(desired));
  return applied;
}

ReconcileResult VIOSClusterReconciler::Reconcile(const std::string& key) {
  ReconcileResult result;
  if (!is_leader_()) return result;
  std::optional<json> cached = caches_.clusters.GetByKey(key);
  if (!cached) return result;  // deleted: the DaemonSet and CA Secret go with it
  json cluster = WithTypeMeta(*cached, "vios.dev/v1alpha1", "VIOSCluster");
  const std::string ns = cluster["metadata"].value("namespace", "");
  const std::string name = cluster["metadata"].value("name", "");
  const WallTime now = clock_();

  std::vector<json> members = InCluster(caches_.members, ns, name);
  std::vector<json> volumes = InCluster(caches_.volumes, ns, name);
  ValidationContext ctx;
  ctx.secret = [this](const std::string& sns, const std::string& sname) {
    return GetSecret(sns, sname);
  };
  ctx.volumes = volumes;
  ctx.other_clusters = caches_.clusters.List();
  ctx.agent_ports = options_.daemonset.ports;
  std::vector<FieldProblem> problems = ValidateClusterSpec(cluster, ctx);

  // An invalid spec leaves the running DaemonSet alone: agents keep serving what they have.
  std::optional<json> ds;
  if (problems.empty()) {
    ds = EnsureDaemonSet(cluster);
  } else {
    ds = caches_.daemonsets.Get(ns, NodeDaemonSetName(name));
  }
  WallTime ca_renewal = tls_.EnsureCa(cluster);

  json status = ComputeClusterStatus({.cluster = cluster,
                                      .members = members,
                                      .volumes = volumes,
                                      .problems = problems,
                                      .daemonset = ds ? &*ds : nullptr,
                                      .now = now});
  const json old_status = cluster.value("status", json::object());
  if (!StatusEqual(status, old_status)) {
    json updated = cluster;
    updated["status"] = status;
    client_.UpdateStatus(kube::resources::kVIOSClusters, updated);
    if (metrics_ != nullptr) metrics_->StatusWrite("VIOSCluster");
    const json old_conditions = old_status.value("conditions", json::array());
    const std::string old_ready = ConditionStatus(old_conditions, "Ready");
    const json* ready = FindCondition(status["conditions"], "Ready");
    const json* was = FindCondition(old_conditions, "Ready");
    const bool message_changed =
        was == nullptr || (*was).value("message", "") != (*ready).value("message", "");
    if (recorder_ != nullptr && !problems.empty() && message_changed) {
      recorder_->Record(cluster, kube::EventType::kWarning, "InvalidSpec", "Validate",
                        FormatProblems(problems));
    }
    VIOS_LOG(kInfo, "cluster status updated")
        .Field("namespace", ns)
        .Field("cluster", name)
        .Field("ready", (*ready).value("status", ""))
        .Field("was_ready", old_ready)
        .Field("members", static_cast<int64_t>(members.size()))
        .Field("members_up", status.value("membersUp", int64_t{0}));
  }

  auto until_ca = std::chrono::duration_cast<milliseconds>(ca_renewal - now);
  result.requeue_after = std::max(until_ca, milliseconds(1000));
  if (std::any_of(problems.begin(), problems.end(),
                  [](const FieldProblem& p) { return p.transient; })) {
    result.requeue_after = std::min(*result.requeue_after, options_.recheck);
  }
  return result;
}

}  // namespace vios::op
