// Agent: assembles a running vios-agent from its configuration — backends, the router, pool
// volumes, one logical unit per volume, one SCSI device and iSCSI target per virtual port, FUSE
// exports, the iSCSI server, the local API and the metrics endpoint — and tears it down in
// reverse order. Ports and volumes can also come and go at run time through the local API
// (PortManager), which is how the CSI node plugin attaches pods.
//
//   AgentConfig config = LoadAgentConfigFile(path);
//   auto agent = Agent::Create(config);   // throws AgentError naming what failed
//   agent->Start();
//   ...
//   agent->Stop();
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/events/event_bus.h"
#include "common/metrics/metrics.h"
#include "node-agent/api/agent_service.h"
#include "node-agent/api/port_manager.h"
#include "node-agent/app/data_path_metrics.h"
#include "node-agent/cluster/cluster_agent.h"
#include "node-agent/config/agent_config.h"
#include "node-agent/fuse/fuse_export.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/target.h"
#include "node-agent/peer/peer_server.h"
#include "node-agent/pool/pool.h"
#include "node-agent/pool/volume.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/reservation/pr_metrics.h"
#include "node-agent/reservation/pr_peer_notifier.h"
#include "node-agent/router/router.h"
#include "node-agent/router/router_metrics.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_device.h"

namespace vios::agent {

class AgentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Agent final : public PortManager {
 public:
  // Create opens every backend and builds the configured volumes and ports; nothing listens yet.
  static std::unique_ptr<Agent> Create(const AgentConfig& config);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Start opens the portals, the FUSE exports, the local API and the metrics endpoint.
  void Start();
  // Stop closes the API, portals and sessions (waiting for in-flight commands), unmounts FUSE
  // exports and closes backends. Idempotent.
  void Stop();

  // Bound addresses (useful when the configuration asked for port 0).
  std::vector<iscsi::PortalInfo> Portals() const;
  uint16_t metrics_port() const { return exposer_ ? exposer_->port() : 0; }

  // PortManager (the local API).
  PortInfo CreatePort(const PortRequest& request) override;
  bool DeletePort(const std::string& name) override;
  std::vector<PortInfo> ListPorts(const std::string& volume_id) override;
  VolumeStats PortVolumeStats(const std::string& port_name) override;
  AgentInfo Info() override;

 private:
  // VolumeDevices: the SCSI devices (one per iSCSI port) sharing a volume's logical unit, so the
  // reservation policy can post unit attentions to the right nexus without taking mu_.
  struct VolumeDevices {
    std::mutex mu;
    std::vector<std::weak_ptr<scsi::ScsiDevice>> devices;  // Guarded by mu.
  };
  struct VolumeState {
    std::string pool;
    std::shared_ptr<VolumeDevices> devices = std::make_shared<VolumeDevices>();
    std::shared_ptr<pool::Volume> volume;  // Extents over the pool's routed backends.
    std::shared_ptr<scsi::ReservationPolicy> reservations;  // Outlives lu (declared before it).
    std::shared_ptr<scsi::LogicalUnit> lu;
    bool from_config = false;  // Config volumes stay when their last port goes.
    int ports = 0;
  };
  struct PortState {
    PortRequest request;
    std::shared_ptr<scsi::ScsiDevice> device;
    std::shared_ptr<iscsi::Target> target;
    std::unique_ptr<fuse::FuseExport> fuse;
    std::string fuse_dir;      // Where a FUSE port mounts; its file is <fuse_dir>/volume.
    bool from_config = false;  // Configured ports are not saved in ports.json.
  };

  explicit Agent(AgentConfig config);
  // OpenBackendDevice opens one backend (file, device, SAN LUN); nullptr with *error.
  std::unique_ptr<backend::BlockDevice> OpenBackendDevice(const BackendConfig& b,
                                                          std::string* error) const;
  // AddBackendLocked adds an opened backend to its pool (created on first use).
  bool AddBackendLocked(const PoolConfig& pool_config, const BackendConfig& b,
                        std::unique_ptr<backend::BlockDevice> device, std::string* error);
  void OpenBackends();
  void BuildConfiguredVolumes();
  void BuildConfiguredPorts();
  // OpenVolumeLocked builds (or returns, or extends) the volume named id over extents.
  // cluster_volume: a VIOSVolume of the cluster (made through the API in cluster mode) keeps its
  // reservations in the VIOSVolume; others in the state directory.
  VolumeState& OpenVolumeLocked(const std::string& id, const std::string& pool_name,
                                const std::vector<pool::Extent>& extents, bool read_only,
                                bool cluster_volume = false);
  // MakeReservationPolicy builds and initialises a volume's persistent-reservation policy;
  // throws PortError when its state cannot be loaded.
  std::shared_ptr<reservation::LocalPersistentReservations> MakeReservationPolicy(
      const std::string& id, bool cluster_volume);
  void ForgetReservationPolicy(const std::string& id);
  // NotifyPeers sends a volume's new reservation state to every peer (DESIGN.md §7); true once
  // every Up one applied it (Down ones are told too, not waited for). ApplyPeerReservation is
  // the receiving side.
  bool NotifyPeers(const std::string& volume, uint64_t version, const std::string& state_json,
                   std::string* error);
  peer::ReservationResult ApplyPeerReservation(const std::string& volume, uint64_t version,
                                               const std::string& state_json);
  // QueryPeers asks every member of the cluster view (Down ones too: the view may be stale while
  // the API server is away) for its copy of a volume's reservation state; true once each
  // answered from a confirmed copy or said it holds none. QueryLocalReservation is the
  // receiving side.
  bool QueryPeers(const std::string& volume,
                  std::vector<reservation::PrPeerNotifier::PeerState>* states, std::string* error);
  peer::ReservationCopy QueryLocalReservation(const std::string& volume);
  // ReservationPeers: the members NotifyPeers and QueryPeers address (all but Leaving ones),
  // with the shared peer channel (null when there is none yet) and whether the view shows Up.
  struct ReservationPeer {
    std::string name;
    std::shared_ptr<grpc::Channel> channel;
    bool up = false;
  };
  std::vector<ReservationPeer> ReservationPeers() const;
  std::shared_ptr<reservation::LocalPersistentReservations> FindReservationPolicy(
      const std::string& volume);
  static constexpr std::chrono::milliseconds kPeerRpcDeadline{1000};  // Reservation RPCs.
  // AddPortLocked makes the port live: an iSCSI target, or a FUSE export once started.
  PortInfo AddPortLocked(PortRequest request);
  void StartFuseLocked(const std::string& name, PortState& port);
  PortInfo DescribeLocked(const std::string& name, const PortState& port) const;
  std::string PortIqn(const PortRequest& request) const;
  std::string PortalAddress() const;
  // Cluster mode (agent_cluster.cc). JoinCluster registers with the configured VIOSCluster and
  // starts the cluster loop: pools from the cluster's spec, saved ports restored once their pool
  // exists, the peer channel once the operator issued this member's certificate, status reports.
  void JoinCluster();
  void LeaveCluster();
  void ClusterLoop();
  // ApplyClusterPools opens the backends of the cluster's pools that are not open yet; backends
  // that fail stay in backend_errors_ (reported Lost) and are retried.
  void ApplyClusterPools();
  // EnsurePeerServer fetches this member's peer certificate Secret into the state directory and
  // starts the peer channel with it (a restart without the API server uses the saved files).
  void EnsurePeerServer();
  void ReportStatus();
  // SyncPeerPaths gives every backend's router one PeerPath per peer member (one mutual-TLS
  // channel per peer), and removes the paths of members that left.
  void SyncPeerPaths();
  // PublishRouterEvent turns a router's path transitions into bus messages (DESIGN.md §5).
  void PublishRouterEvent(const router::RouterEvent& event);
  // RecordPathEvent makes it a Kubernetes Event on the VIOSMember (cluster mode; throttled).
  void RecordPathEvent(const router::RouterEvent& event);
  // ApplyClusterPaths follows the VIOSCluster's spec.paths; SetPathsLocked applies a paths
  // setting to every backend's router (probe interval, failure threshold, I/O timeout; reroute
  // is applied by SyncPeerPaths).
  void ApplyClusterPaths();
  void SetPathsLocked(const PathsConfig& paths);
  bool RerouteEnabled() const;
  peer::DataProtection DataProtectionSetting() const;  // spec.paths.peerDataProtection
  router::Router* FindRouter(const std::string& pool, const std::string& backend) const;
  // Saved ports (port_store.h): SavePortsLocked writes the API-made ports; RestorePorts creates
  // the saved ones whose pool is open (the others wait for their pool).
  void SavePortsLocked();
  void RestorePorts();
  void RestorePortsLocked();

  AgentConfig config_;
  metrics::Registry registry_;
  std::shared_ptr<DataPathCollector> collector_ = std::make_shared<DataPathCollector>();
  std::shared_ptr<router::RouterMetrics> router_metrics_ =
      std::make_shared<router::RouterMetrics>();
  std::unique_ptr<metrics::Exposer> exposer_;
  std::map<std::string, std::unique_ptr<pool::Pool>> pools_;  // By pool name.
  iscsi::TargetRegistry targets_;
  std::unique_ptr<iscsi::Server> server_;
  std::unique_ptr<AgentService> api_service_;
  std::unique_ptr<AgentApiServer> api_server_;

  // Every backend's router, for the peer server's ExecuteIo and peer paths. Routers live as long
  // as their pool (until Stop).
  mutable std::shared_mutex routers_mu_;
  std::map<std::pair<std::string, std::string>, router::Router*> routers_;

  // The event bus: path transitions always; cluster messages in cluster mode.
  std::unique_ptr<events::EventBus> bus_ = std::make_unique<events::EventBus>(1);
  // Cluster membership (optional): the member, the peer channel, the cluster loop.
  std::unique_ptr<cluster::ClusterAgent> cluster_;
  std::unique_ptr<kube::Client> kube_;  // Reads this member's peer certificate Secret.
  // Where path Events go (cluster_ while joined); router threads read it under the lock.
  std::mutex event_sink_mu_;
  cluster::ClusterAgent* event_sink_ = nullptr;  // Guarded by event_sink_mu_.
  std::unique_ptr<peer::PeerServer> peer_server_;
  std::string peer_tls_fingerprint_;  // What the running peer server was started with.
  struct PeerLink {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
  };
  mutable std::mutex peer_links_mu_;            // peer_links_ changes on the cluster thread only.
  std::map<std::string, PeerLink> peer_links_;  // By member.

  // Persistent reservations: every open volume's policy (the peer channel applies updates to
  // them without taking mu_), the notifier cluster volumes use, and their metrics.
  class PeerReservationNotifier;
  std::unique_ptr<reservation::PrPeerNotifier> pr_notifier_;
  std::shared_ptr<kube::Client> pr_client_;       // Short retries: a PR OUT waits for them.
  std::shared_ptr<kube::Client> pr_read_client_;  // Reservation re-reads: one short attempt.
  std::shared_ptr<reservation::PrCollector> pr_collector_ =
      std::make_shared<reservation::PrCollector>();
  std::mutex pr_mu_;
  std::map<std::string, std::weak_ptr<reservation::LocalPersistentReservations>> pr_policies_;
  std::chrono::steady_clock::time_point next_credentials_check_{};
  std::thread cluster_thread_;
  std::mutex cluster_mu_;
  std::condition_variable cluster_cv_;
  bool cluster_stop_ = false;   // Guarded by cluster_mu_.
  bool config_changed_ = true;  // Guarded by cluster_mu_.

  mutable std::mutex mu_;  // Guards volumes_, ports_, started_; held across port setup/teardown.
  std::map<std::string, VolumeState> volumes_;    // By volume id.
  std::map<std::string, PortState> ports_;        // By port name (the target IQN for config ports).
  std::map<std::string, std::string> fuse_dirs_;  // Configured FUSE exports' directories.
  std::vector<PortRequest> pending_ports_;        // Saved ports waiting for their pool.
  std::map<std::pair<std::string, std::string>, std::string> backend_errors_;  // (pool, backend).
  PathsConfig paths_;  // Guarded by mu_: the config's, then the VIOSCluster's spec.paths.
  bool paths_from_cluster_ = false;  // Guarded by mu_: spec.paths applied (and logged) once.
  bool started_ = false;
};

}  // namespace vios::agent
