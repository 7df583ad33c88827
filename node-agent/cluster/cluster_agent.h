// ClusterAgent: makes a vios-agent cluster-aware (DESIGN.md §5). It registers the agent as a
// VIOSMember, holds its heartbeat Lease, watches the VIOSCluster, the other VIOSMembers and the
// VIOSVolumes it serves, publishes what changes as typed messages on the event bus, and keeps a
// local copy so the agent comes up and keeps serving while the API server is unreachable.
//
//   events::EventBus bus;
//   cluster::ClusterAgent agent(kube::LoadDefaultConfig(),
//                               {.cluster = "local", .ns = "vios-system", .member = node_name,
//                                .peer_address = "127.0.0.1:7443", .version = "0.1.0",
//                                .state_dir = "/var/lib/vios/state"},
//                               bus);
//   bus.RegisterHandler(events::MessageType::kConfigChanged, "apply-config", ...);
//   agent.Start();                        // returns at once; works in the background
//   cluster::ClusterView view = agent.Snapshot();   // thread-safe copy
//   agent.SetLocalStatus({.paths = ..., .virtual_ports = 3});
//   agent.Stop();
//
// Conventions shared with vios-operator: the VIOSMember and its Lease are both named after the
// member (= node) in the cluster's namespace and labelled vios.dev/cluster=<cluster>; the Lease's
// holderIdentity is the member name, renewed every lease_duration/3. The agent writes with
// server-side apply as field manager "vios-agent": spec (cluster, nodeName) and the status fields
// it owns (peerAddress, version, leaseName, lastHeartbeatTime, paths, healthyPaths, lostPaths,
// virtualPorts). status.state and conditions belong to the operator.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/events/event_bus.h"
#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/kube/event_recorder.h"
#include "common/kube/informer.h"
#include "node-agent/cluster/cluster_view.h"
#include "node-agent/cluster/event_throttle.h"
#include "node-agent/cluster/local_state.h"

namespace vios::agent::cluster {

inline constexpr const char* kFieldManager = "vios-agent";
inline constexpr const char* kClusterLabel = "vios.dev/cluster";

struct ClusterAgentOptions {
  std::string cluster;       // VIOSCluster name
  std::string ns;            // its namespace
  std::string member;        // this agent's member name = its node name (--node-name)
  std::string peer_address;  // host:port of this agent's peer channel
  std::string version;
  std::string state_dir;  // where LocalStateStore keeps cluster-state.json
  std::chrono::milliseconds lease_duration{std::chrono::seconds(15)};
  // renew_interval 0 means lease_duration / 3.
  std::chrono::milliseconds renew_interval{0};
  // Backoff between failed registration / heartbeat attempts.
  std::chrono::milliseconds initial_backoff{std::chrono::milliseconds(200)};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(5)};
  // Informer reconnect ceiling: bounds how long a rejoin can take after the API server returns.
  std::chrono::milliseconds watch_max_backoff{std::chrono::seconds(2)};
};

// PathState is one backend path as the data path reports it (VIOSMember status.paths).
struct PathState {
  std::string pool;
  std::string backend;
  std::string state;  // Healthy, Degraded, Lost
  std::string message;
  bool operator==(const PathState&) const = default;
};

// LocalStatus is what this agent reports about itself.
struct LocalStatus {
  std::vector<PathState> paths;
  int64_t virtual_ports = 0;
  bool operator==(const LocalStatus&) const = default;
};

// AgentState summarizes the agent's connection to its cluster (for /healthz, logs, tests).
struct AgentState {
  bool registered = false;               // the VIOSMember was applied at least once by this process
  bool api_reachable = false;            // the last heartbeat succeeded
  bool serving_from_local_copy = false;  // the view comes from the local copy, not the API
  bool local_state_corrupt = false;      // the local copy was found corrupt at start
  std::string local_state_error;
  uint64_t heartbeats = 0;  // successful Lease renewals
  uint64_t heartbeat_failures = 0;
  uint64_t views_published = 0;  // view changes applied
  std::string origin;            // OriginName of the current view
};

class ClusterAgent {
 public:
  // The agent uses its own Client built from config (few retries: it has its own backoff).
  ClusterAgent(kube::Config config, ClusterAgentOptions options, events::EventBus& bus);
  ~ClusterAgent();
  ClusterAgent(const ClusterAgent&) = delete;
  ClusterAgent& operator=(const ClusterAgent&) = delete;

  // Start loads the local copy (publishing it as the initial view, "serving from local copy")
  // and starts registration, heartbeat and watches in the background. Never blocks on the API.
  void Start();
  // Stop ends every thread; the Lease is left to expire (a restart within the lease duration
  // then is not seen as Down).
  void Stop();

  // Snapshot returns a copy of the current view. Thread-safe.
  ClusterView Snapshot() const;
  AgentState State() const;
  // SetLocalStatus updates what the agent reports in its VIOSMember status (applied at once when
  // reachable, otherwise when it is again).
  void SetLocalStatus(LocalStatus status);
  // WaitFor blocks until pred(Snapshot(), State()) holds or timeout passes; for tests and start.
  // SetReservationCopy keeps an opaque copy of a volume's reservation state in the local copy
  // (the reservation issue defines its content).
  void SetReservationCopy(const std::string& volume, nlohmann::json copy);
  bool WaitFor(const std::function<bool(const ClusterView&, const AgentState&)>& pred,
               std::chrono::milliseconds timeout) const;

  // RecordEvent reports a Kubernetes Event about this member's VIOSMember (DESIGN.md §6: path
  // transitions). It never blocks: the event is queued and sent by the heartbeat thread after
  // its next successful renewal (at once: the thread is woken). Rate-limited per throttle_key
  // (EventThrottle defaults: 4 at once, then one per 30 s; 20 at once over all keys, then one per
  // 3 s), the next allowed event saying how many were suppressed; dropped when 64 are queued.
  // Returns whether it was queued.
  bool RecordEvent(bool warning, const std::string& reason, const std::string& action,
                   const std::string& note, const std::string& throttle_key);

  const ClusterAgentOptions& options() const { return options_; }

 private:
  void RegistrationLoop();
  void ReconcileLoop();
  // Register applies the VIOSMember (spec, then status) and the Lease.
  void Register();
  void RenewLease();
  void ApplyStatus();
  nlohmann::json LeaseObject();
  void MarkDirty();
  // Rebuild recomputes the view from the informers once all have synced.
  void Rebuild();
  // InstallView swaps in view and publishes the diff; true if anything changed.
  bool InstallView(ClusterView view);
  void ReportCorruptStateOnce();
  void SendQueuedEvents();
  bool SleepFor(std::chrono::milliseconds d);

  const ClusterAgentOptions options_;
  events::EventBus& bus_;
  std::unique_ptr<kube::Client> client_;        // registration + heartbeat (short timeouts)
  std::unique_ptr<kube::Client> watch_client_;  // informers
  LocalStateStore store_;
  std::unique_ptr<kube::EventRecorder> recorder_;
  std::unique_ptr<kube::Informer> clusters_;
  std::unique_ptr<kube::Informer> members_;
  std::unique_ptr<kube::Informer> volumes_;

  mutable std::mutex mu_;  // guards everything below
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  bool dirty_ = false;
  bool status_dirty_ = true;
  bool corrupt_reported_ = false;
  ClusterView view_;
  AgentState state_;
  LocalStatus local_status_;
  nlohmann::json reservations_ = nlohmann::json::object();
  LocalState last_saved_;  // Rebuild thread only: what was last written to the local copy.
  bool persist_pending_ = false;
  nlohmann::json member_object_;  // as the last apply returned it (Events refer to it)
  struct QueuedEvent {
    bool warning;
    std::string reason, action, note;
  };
  std::vector<QueuedEvent> event_queue_;
  EventThrottle event_throttle_;
  std::string acquire_time_;  // Lease acquireTime, fixed for this process

  std::thread registration_thread_;
  std::thread reconcile_thread_;
  bool started_ = false;
};

}  // namespace vios::agent::cluster
