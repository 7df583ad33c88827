// The agent's configuration: what a standalone agent serves (pools, backends, volumes, virtual
// ports, FUSE exports) and where it listens. Read from a YAML file (node-agent/README.md documents
// the format); in a cluster the same structures are filled from the custom resources.
//
//   AgentConfig config = LoadAgentConfigFile("/etc/vios/agent.yaml");  // throws ConfigError
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vios::agent {

// ConfigError names the offending field by its path ("pools[0].backends[1].file.size").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ChapCredentials {
  std::string user;
  std::string secret;
  bool operator==(const ChapCredentials&) const = default;
};

struct FileBackendConfig {
  std::string path;
  uint64_t size = 0;    // 0: use the existing file's size.
  bool create = false;  // Create (sparse) at `size` if missing.
  bool operator==(const FileBackendConfig&) const = default;
};

struct IscsiBackendConfig {
  std::string portal;  // host:port
  std::string iqn;
  uint32_t lun = 0;
  std::string initiator_name;
  std::optional<ChapCredentials> chap;
  bool operator==(const IscsiBackendConfig&) const = default;
};

struct DeviceBackendConfig {
  std::string path;
  bool operator==(const DeviceBackendConfig&) const = default;
};

// BackendConfig: exactly one of file, iscsi, device is set.
struct BackendConfig {
  std::string name;
  std::optional<FileBackendConfig> file;
  std::optional<IscsiBackendConfig> iscsi;
  std::optional<DeviceBackendConfig> device;
  bool operator==(const BackendConfig&) const = default;
};

struct PoolConfig {
  std::string name;
  uint64_t extent_size = 64ull << 20;
  std::vector<BackendConfig> backends;
  bool operator==(const PoolConfig&) const = default;
};

struct ExtentConfig {
  std::string backend;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ExtentConfig&) const = default;
};

// VolumeConfig: either explicit extents, or a size the agent allocates from the pool at start.
struct VolumeConfig {
  std::string name;
  std::string pool;
  uint64_t size = 0;
  std::vector<ExtentConfig> extents;
  bool read_only = false;
  bool operator==(const VolumeConfig&) const = default;
};

// PortConfig: one virtual port = one iSCSI target identity exposing one volume as LUN 0.
struct PortConfig {
  std::string target;  // Target IQN.
  std::string volume;
  std::vector<std::string> initiators;         // ACL: initiator IQNs allowed in.
  bool allow_any_initiator = false;            // Must be explicit; an empty ACL admits nobody.
  std::optional<ChapCredentials> chap;         // The initiator authenticates with these.
  std::optional<ChapCredentials> mutual_chap;  // The target answers with these.
  bool operator==(const PortConfig&) const = default;
};

struct FuseExportConfig {
  std::string volume;
  std::string mountpoint;  // Directory; the volume appears as <mountpoint>/<volume>.
  bool operator==(const FuseExportConfig&) const = default;
};

// ClusterMembershipConfig: register with a VIOSCluster (VIOSMember + heartbeat Lease) and keep a
// local copy of the cluster state. Without it the agent runs standalone.
struct ClusterMembershipConfig {
  std::string name;          // VIOSCluster name.
  std::string ns;            // Its namespace.
  std::string kubeconfig;    // Empty: $KUBECONFIG, in-cluster, ~/.kube/config.
  std::string peer_address;  // host:port peers reach this agent on (reported in status).
  // host:port the peer channel (gRPC over mutual TLS) listens on; empty: peer_address. With
  // neither, the agent has no peer channel (it still registers and reports status).
  std::string peer_listen;
  // TCP port of the peer data channel (rerouted I/O, node-agent/peer/peer_data.h) on the host of
  // peer_listen; 0: one of the system's choosing (reported to peers through Health).
  uint16_t peer_data_port = 0;
  bool operator==(const ClusterMembershipConfig&) const = default;
};

// PathsConfig: how backend paths are probed and what happens when one is lost (DESIGN.md §6,
// node-agent/router/README.md). YAML `paths:` standalone; VIOSCluster spec.paths in a cluster
// (same names, followed at run time).
struct PathsConfig {
  std::chrono::milliseconds probe_interval{1000};  // probeInterval: between active probes
  unsigned failure_threshold = 2;                  // failureThreshold: failed probes -> Lost
  bool reroute = true;  // reroute: forward I/O through a healthy peer while the local path is Lost
  // ioTimeout: how long an I/O waits for any usable path before it fails with ABORTED COMMAND
  // (LOGICAL UNIT COMMUNICATION FAILURE, 0B/08/00).
  std::chrono::milliseconds io_timeout{30000};
  // peerDataProtection: "encrypt" (false, the default) or "integrity" (true): rerouted I/O over
  // the peer data channel is authenticated but not encrypted when both ends say integrity
  // (node-agent/peer/peer_data.h).
  bool peer_data_integrity = false;
  bool operator==(const PathsConfig&) const = default;
};

// ParseDuration reads a duration as the CRDs write it: one or more <number><unit> with unit ms,
// s, m or h, fractions allowed ("500ms", "1.5s", "1m30s"); nullopt if malformed.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text);

struct AgentConfig {
  std::string node_name;
  std::vector<std::string> iscsi_listen{"127.0.0.1:3260"};
  std::string api_socket;      // gRPC unix socket for the CSI node plugin; empty: off.
  std::string metrics_listen;  // host:port for /metrics; empty: off.
  std::string state_dir;
  std::string iqn_prefix = "iqn.2026-11.dev.vios";  // Ports created through the API.
  uint32_t event_loops = 0;                         // 0: one per core.
  std::vector<PoolConfig> pools;
  std::vector<VolumeConfig> volumes;
  std::vector<PortConfig> ports;
  std::vector<FuseExportConfig> fuse_exports;
  std::optional<ClusterMembershipConfig> cluster;
  PathsConfig paths;  // in a cluster, the VIOSCluster's spec.paths replaces it
  bool operator==(const AgentConfig&) const = default;

  const PoolConfig* FindPool(const std::string& name) const;
  const VolumeConfig* FindVolume(const std::string& name) const;
};

// ParseAgentConfig parses and validates YAML text; `origin` names the source in errors.
AgentConfig ParseAgentConfig(const std::string& yaml_text, const std::string& origin = "config");
// LoadAgentConfigFile reads and parses a file; errors name the file.
AgentConfig LoadAgentConfigFile(const std::string& path);

// ValidateAgentConfig checks cross references (a volume's pool and extents' backends exist, port
// volumes exist, names unique, IQNs well-formed, extents inside their backend where sizes are
// known).
void ValidateAgentConfig(const AgentConfig& config);

// IsValidIqn checks the iqn./eui./naa. name forms of RFC 7143 §4.2.7.
bool IsValidIscsiName(const std::string& name);

}  // namespace vios::agent
