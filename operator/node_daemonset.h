// The node DaemonSet a VIOSCluster runs: on each selected node the vios agent (the VIOS), the
// CSI node plugin and the kubelet's node-driver-registrar (DESIGN.md §2). Built as a pure
// function of the cluster and the operator's settings; the reconciler applies it with
// server-side apply, only when the spec hash it carries changed.
//
//   nlohmann::json ds = BuildNodeDaemonSet(cluster, options);
//   client.Apply(kDaemonSets, ns, ds["metadata"]["name"], ds, "vios-operator", true);
//
// Privileges, container by container (least privilege, DESIGN.md §10):
//   vios-agent      host network (virtual ports and the peer channel listen on host addresses),
//                   capabilities SYS_ADMIN only (FUSE attach fallback mounts), /dev/fuse and the
//                   device backends' paths; no privileged mode, no privilege escalation.
//   vios-csi-node   privileged: it mounts into pod volumes with Bidirectional propagation and
//                   runs iscsiadm; that is what CSI node plugins need.
//   registrar       no capabilities, read-only root filesystem.
// Updates roll out with maxSurge 1 / maxUnavailable 0: the new agent starts beside the old one
// on the same node and takes its sockets over (live upgrade, DESIGN.md §8).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "operator/cluster_validation.h"

namespace vios::op {

struct NodeDaemonSetOptions {
  std::string default_image = "ghcr.io/vios-dev/vios:latest";  // agent + CSI plugin image
  std::string registrar_image = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0";
  std::string service_account = "vios-agent";
  std::string csi_driver_name = "csi.vios.dev";  // the CSIDriver name vios-csi reports
  std::string kubelet_dir = "/var/lib/kubelet";
  AgentPorts ports;
};

// kSpecHashAnnotation carries a hash of the desired DaemonSet so that an unchanged cluster
// causes no write.
inline constexpr const char* kSpecHashAnnotation = "vios.dev/spec-hash";
inline constexpr const char* kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kManagedByValue = "vios-operator";
inline constexpr const char* kClusterLabel = "vios.dev/cluster";

// NodeDaemonSetName is "<cluster>-node".
std::string NodeDaemonSetName(const std::string& cluster);

// BuildNodeDaemonSet returns the full apps/v1 DaemonSet, with an owner reference to the cluster
// and the spec hash annotation.
nlohmann::json BuildNodeDaemonSet(const nlohmann::json& cluster,
                                  const NodeDaemonSetOptions& options);

// OwnerReference builds a controller owner reference to obj.
nlohmann::json OwnerReference(const nlohmann::json& obj);

}  // namespace vios::op
