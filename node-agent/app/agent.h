// Agent: assembles a running vios-agent from its configuration — backends, the router, pool
// volumes, one logical unit per volume, one SCSI device and iSCSI target per virtual port, FUSE
// exports, the iSCSI server and the metrics endpoint — and tears it down in reverse order.
//
//   AgentConfig config = LoadAgentConfigFile(path);
//   auto agent = Agent::Create(config);   // throws AgentError naming what failed
//   agent->Start();
//   ...
//   agent->Stop();
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/metrics/metrics.h"
#include "node-agent/app/data_path_metrics.h"
#include "node-agent/backend/block_device.h"
#include "node-agent/config/agent_config.h"
#include "node-agent/fuse/fuse_export.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/target.h"
#include "node-agent/pool/pool.h"
#include "node-agent/pool/volume.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_device.h"

namespace vios::agent {

class AgentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Agent {
 public:
  // Create opens every backend and builds volumes and ports; nothing listens yet.
  static std::unique_ptr<Agent> Create(const AgentConfig& config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Start opens the portals, the FUSE exports and the metrics endpoint.
  void Start();
  // Stop closes portals and sessions (waiting for in-flight commands), unmounts FUSE exports and
  // closes backends. Idempotent.
  void Stop();

  // Bound addresses (useful when the configuration asked for port 0).
  std::vector<iscsi::PortalInfo> Portals() const;
  uint16_t metrics_port() const { return exposer_ ? exposer_->port() : 0; }

 private:
  struct VolumeState {
    std::shared_ptr<pool::Volume> volume;  // Extents over the pool's routed backends.
    std::shared_ptr<scsi::ReservationPolicy> reservations;  // Outlives lu (declared before it).
    std::shared_ptr<scsi::LogicalUnit> lu;
  };
  struct PortState {
    std::shared_ptr<scsi::ScsiDevice> device;
    std::shared_ptr<iscsi::Target> target;
  };

  explicit Agent(AgentConfig config);
  void OpenBackends();
  void BuildVolumes();
  void BuildPorts();

  AgentConfig config_;
  metrics::Registry registry_;
  std::shared_ptr<DataPathCollector> collector_ = std::make_shared<DataPathCollector>();
  std::unique_ptr<metrics::Exposer> exposer_;
  std::map<std::string, std::unique_ptr<pool::Pool>> pools_;  // By pool name.
  std::map<std::string, VolumeState> volumes_;                // By volume name.
  std::map<std::string, PortState> ports_;                    // By target IQN.
  iscsi::TargetRegistry targets_;
  std::unique_ptr<iscsi::Server> server_;
  std::vector<std::unique_ptr<fuse::FuseExport>> fuse_exports_;
  bool started_ = false;
};

}  // namespace vios::agent
