// ClusterView: the agent's picture of its cluster — configuration, peers, the volumes it serves —
// built from VIOSCluster / VIOSMember / VIOSVolume objects (API form, from informers or from the
// local copy), and the diff between two views as cluster messages (DESIGN.md §5).
//
//   ClusterView v = BuildView(cluster_obj, member_objs, volume_objs, "node-a");
//   for (events::Message& m : DiffViews(old_view, v, "node-a")) bus.Publish(std::move(m));
//
// Pure functions, no I/O: the level-based core of ClusterAgent, unit-tested on its own.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/events/message.h"
#include "node-agent/config/agent_config.h"

namespace vios::agent::cluster {

// ClusterConfig is the VIOSCluster spec mapped onto the agent's config structures.
struct ClusterConfig {
  std::string name;
  std::string ns;
  int64_t generation = 0;
  std::string resource_version;
  std::vector<PoolConfig> pools;
  nlohmann::json spec;  // the whole spec (virtualPorts, paths, reservations, agents)
  bool operator==(const ClusterConfig&) const = default;
};

// PeerInfo is another member as its VIOSMember shows it.
struct PeerInfo {
  std::string name;
  std::string node;
  std::string peer_address;  // host:port of its peer channel; "" until it registered one
  std::string state;         // Joining / Up / Down / Leaving, set by the operator; "" = none yet
  std::string version;
  bool operator==(const PeerInfo&) const = default;
};

// ServedVolume is a VIOSVolume with an attachment served by this agent.
struct ServedVolume {
  std::string name;
  std::string pool;
  uint64_t size = 0;
  std::vector<ExtentConfig> extents;
  std::vector<std::string> virtual_port_iqns;  // the attachments this agent serves
  nlohmann::json reservation;                  // status.reservation, opaque here
  bool operator==(const ServedVolume&) const = default;

  // ToVolumeConfig maps onto the standalone agent's volume structure.
  VolumeConfig ToVolumeConfig() const;
};

// ClusterView is one consistent picture. `origin` says where it came from.
struct ClusterView {
  enum class Origin { kEmpty, kApiServer, kLocalCopy };
  Origin origin = Origin::kEmpty;
  std::optional<ClusterConfig> config;          // nullopt: the VIOSCluster does not exist
  std::string self_state;                       // this member's status.state (operator-owned)
  std::map<std::string, PeerInfo> peers;        // by member name, this member excluded
  std::map<std::string, ServedVolume> volumes;  // by volume name
  // config_errors lists spec parts that could not be mapped (kept out of `config.pools`).
  std::vector<std::string> config_errors;
};

const char* OriginName(ClusterView::Origin origin);

// ParseClusterConfig maps a VIOSCluster; problems (e.g. an unparsable size) are appended to
// errors with the field path, and the offending backend or pool is left out.
ClusterConfig ParseClusterConfig(const nlohmann::json& obj, std::vector<std::string>* errors);
PeerInfo ParsePeer(const nlohmann::json& member);
// ServesVolume: the volume belongs to cluster and has an attachment whose `agent` is self (or,
// when the attachment names no agent, whose `node` is self).
bool ServesVolume(const nlohmann::json& volume, const std::string& cluster,
                  const std::string& self);
ServedVolume ParseServedVolume(const nlohmann::json& volume, const std::string& self);

// BuildView assembles a view; members and volumes not matching (other clusters, volumes served
// elsewhere) are ignored. cluster may be null.
ClusterView BuildView(const nlohmann::json& cluster, const std::vector<nlohmann::json>& members,
                      const std::vector<nlohmann::json>& volumes, const std::string& cluster_name,
                      const std::string& self, ClusterView::Origin origin);

// DiffViews returns the messages that take a receiver from `before` to `after`, in a stable order:
// ConfigChanged, then member changes, then volume changes. source is this member.
std::vector<events::Message> DiffViews(const ClusterView& before, const ClusterView& after,
                                       const std::string& source);

// TrimObject keeps what the local copy needs: apiVersion, kind, metadata (name, namespace,
// labels, generation, resourceVersion, uid), spec, status.
nlohmann::json TrimObject(const nlohmann::json& obj);

}  // namespace vios::agent::cluster
