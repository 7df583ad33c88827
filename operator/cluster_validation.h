// Validation of a VIOSCluster spec beyond what the CRD schema can say: references to other
// objects (CHAP Secrets, backends used by VIOSVolumes), conflicts between fields and with other
// clusters (port ranges, two backends on the same storage). Every problem names the field, in the
// API server's own path syntax ("spec.pools[0].backends[1].iscsi.chapSecretRef.name"), so the
// condition message points the user at what to fix.
//
//   ValidationContext ctx{.secret = [&](ns, name) { return secrets.Get(ns, name); }, ...};
//   for (const FieldProblem& p : ValidateClusterSpec(cluster, ctx)) ...
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vios::op {

struct FieldProblem {
  std::string field{};    // "spec.virtualPorts.portRange"
  std::string message{};  // what is wrong
  // transient: the problem may go away without a spec change (a Secret created later); the
  // reconciler looks again after a while.
  bool transient = false;
};

// Ports every agent of a cluster binds on the host besides the virtual port range.
struct AgentPorts {
  uint16_t peer = 7470;     // peer channel (gRPC, mutual TLS)
  uint16_t data = 7471;     // peer data channel (rerouted I/O, mutual TLS)
  uint16_t metrics = 9470;  // Prometheus /metrics and health
};

struct ValidationContext {
  // secret looks a Secret up (nullopt if it does not exist).
  std::function<std::optional<nlohmann::json>(const std::string& ns, const std::string& name)>
      secret;
  // volumes: the VIOSVolumes whose spec.cluster is this cluster.
  std::vector<nlohmann::json> volumes;
  // other_clusters: the other VIOSClusters (any namespace); their agents share the hosts.
  std::vector<nlohmann::json> other_clusters;
  AgentPorts agent_ports;
};

std::vector<FieldProblem> ValidateClusterSpec(const nlohmann::json& cluster,
                                              const ValidationContext& ctx);

// FormatProblems joins problems as "field: message; field: message".
std::string FormatProblems(const std::vector<FieldProblem>& problems);

// PortRange reads spec.virtualPorts.portRange with the CRD's defaults (3260-3299).
std::pair<int64_t, int64_t> PortRange(const nlohmann::json& cluster);

}  // namespace vios::op
