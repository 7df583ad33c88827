// The VIOSCluster status computation: from the cluster, its members, its volumes, the spec
// problems found and the node DaemonSet, the status the cluster should show. A pure function; the
// reconciler writes the result only when it differs from what is stored (conditions keep their
// lastTransitionTime while their status holds, so an unchanged world gives an identical status).
//
//   nlohmann::json status = ComputeClusterStatus({.cluster = c, .members = ms, .volumes = vs,
//                                                 .problems = problems, .daemonset = ds,
//                                                 .now = clock()});
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "operator/api_time.h"
#include "operator/cluster_validation.h"

namespace vios::op {

// kMaxMemberSummary bounds status.members so that the object stays small with many members; the
// counts always cover every member.
inline constexpr size_t kMaxMemberSummary = 64;

struct ClusterStatusInput {
  const nlohmann::json& cluster;
  const std::vector<nlohmann::json>& members;  // VIOSMembers whose spec.cluster is this cluster
  const std::vector<nlohmann::json>& volumes;  // VIOSVolumes whose spec.cluster is this cluster
  const std::vector<FieldProblem>& problems;   // from ValidateClusterSpec
  const nlohmann::json* daemonset = nullptr;   // the node DaemonSet as stored, if any
  WallTime now{};
};

nlohmann::json ComputeClusterStatus(const ClusterStatusInput& in);

// StatusEqual compares two statuses as the API server would store them.
bool StatusEqual(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace vios::op
