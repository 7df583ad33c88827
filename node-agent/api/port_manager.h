// PortManager: what the agent's local API (agent.proto, served on a unix socket to the CSI node
// plugin) can ask of the agent at run time — create, delete and list virtual ports, and read a
// volume's statistics. The Agent implements it; AgentService translates it to gRPC.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vios::agent {

enum class AttachTransport { kIscsi, kFuse };

struct PortExtent {
  std::string backend;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const PortExtent&) const = default;
};

// PortRequest describes one virtual port: a pod's (or node's) private access to one volume.
struct PortRequest {
  std::string name;       // Idempotency key.
  std::string volume_id;  // Volumes are shared by the ports that name the same id.
  std::string pool;
  std::vector<PortExtent> extents;
  uint64_t size_bytes = 0;
  AttachTransport transport = AttachTransport::kIscsi;
  std::vector<std::string> allowed_initiators;
  std::string chap_user, chap_secret, mutual_user, mutual_secret;
  bool read_only = false;
  std::string owner;  // "namespace/pod" or the node, for logs.
};

struct PortInfo {
  std::string name;
  std::string volume_id;
  AttachTransport transport = AttachTransport::kIscsi;
  std::string target_iqn;
  std::string portal;
  uint32_t lun = 0;
  std::string fuse_path;
  uint64_t size_bytes = 0;
  uint32_t block_size = 512;
  std::vector<std::string> allowed_initiators;
  uint32_t active_sessions = 0;
  std::string owner;
};

struct VolumeStats {
  uint64_t read_ops = 0, write_ops = 0, read_bytes = 0, write_bytes = 0, errors = 0;
  uint64_t size_bytes = 0;
};

struct PathInfo {
  std::string pool, backend, state, detail;
};

struct AgentInfo {
  std::string node_name, version;
  std::vector<std::string> pools;
  std::vector<PathInfo> paths;
  uint32_t virtual_ports = 0;
};

// PortError carries the gRPC-style class of a refusal so the API can answer with the right code.
class PortError : public std::runtime_error {
 public:
  enum class Kind { kInvalidArgument, kNotFound, kAlreadyExists, kFailedPrecondition, kInternal };
  PortError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class PortManager {
 public:
  virtual ~PortManager() = default;
  // CreatePort is idempotent by name: the same request again returns the existing port; a
  // different request under the same name is kAlreadyExists.
  virtual PortInfo CreatePort(const PortRequest& request) = 0;
  // DeletePort closes the port's sessions (waiting for their in-flight commands) and unmounts its
  // FUSE export; false if there was no such port.
  virtual bool DeletePort(const std::string& name) = 0;
  virtual std::vector<PortInfo> ListPorts(const std::string& volume_id) = 0;
  virtual VolumeStats PortVolumeStats(const std::string& port_name) = 0;
  virtual AgentInfo Info() = 0;
};

}  // namespace vios::agent
