// The informers the operator's reconcilers read from: the actual state, never the event payload
// (level-based reconciliation). Owned by the Manager; reconcilers hold a reference.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "common/kube/informer.h"

namespace vios::op {

// kOperatorFieldManager is the server-side apply field manager of everything the operator writes.
inline constexpr const char* kOperatorFieldManager = "vios-operator";

inline const kube::ResourceRef kDaemonSets{"apps", "v1", "daemonsets", true};

// kMemberLabel is the label an agent puts on its heartbeat Lease: its VIOSMember's name. The
// operator watches only Leases with this label.
inline constexpr const char* kMemberLabel = "vios.dev/member";

struct Caches {
  kube::Informer& clusters;
  kube::Informer& members;
  kube::Informer& volumes;
  kube::Informer& leases;
  kube::Informer& daemonsets;
};

// InCluster returns the objects of informer in namespace ns whose spec.cluster is cluster.
std::vector<nlohmann::json> InCluster(const kube::Informer& informer, const std::string& ns,
                                      const std::string& cluster);

// WithTypeMeta sets apiVersion and kind when a cached object lacks them (list items may).
nlohmann::json WithTypeMeta(nlohmann::json obj, const std::string& api_version,
                            const std::string& kind);

}  // namespace vios::op
