// Manager: wires informers, the two controllers, the event bus and leader election together
// (controller-runtime's manager, small). Informers run on every replica so that a standby's
// caches are warm; the controllers' workers run only while this replica leads, and every
// reconcile checks leadership before it acts.
//
//   Manager manager(client, options, registry);
//   std::thread signals([&] { WaitForSigterm(); manager.Stop(); });
//   bool clean = manager.Run();   // false: leadership lost (exit and let the pod restart)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "common/events/event_bus.h"
#include "common/kube/client.h"
#include "common/kube/event_recorder.h"
#include "common/kube/informer.h"
#include "common/kube/leader_election.h"
#include "common/metrics/metrics.h"
#include "operator/api_time.h"
#include "operator/controller.h"
#include "operator/operator_metrics.h"
#include "operator/peer_tls.h"
#include "operator/vioscluster_reconciler.h"
#include "operator/viosmember_reconciler.h"

namespace vios::op {

struct ManagerOptions {
  std::string watch_namespace;  // "" = all namespaces
  bool leader_elect = true;
  std::string lease_namespace = "default";
  std::string lease_name = "vios-operator";
  std::string identity;  // this replica's name (pod name)
  std::chrono::milliseconds lease_duration{std::chrono::seconds(15)};
  MemberReconcilerOptions member;
  ClusterReconcilerOptions cluster;
  PkiOptions pki;
  int workers = 2;
  std::chrono::milliseconds sync_timeout{std::chrono::seconds(60)};
};

class Manager {
 public:
  Manager(kube::Client& client, ManagerOptions options, metrics::Registry& registry,
          WallClock clock = SystemWallClock());
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Run starts the informers, campaigns for leadership (or leads at once without leader
  // election), reconciles while leading, and returns true after Stop() (the lease released) or
  // false when leadership was lost.
  bool Run();
  // Stop ends Run. Thread-safe; may be called before Run.
  void Stop();
  bool IsLeader() const;

  OperatorMetrics& metrics() { return metrics_; }
  events::EventBus& bus() { return bus_; }

 private:
  void WireInformers();
  void StartLeading();
  void StopControllers();

  kube::Client& client_;
  const ManagerOptions options_;
  WallClock clock_;
  OperatorMetrics metrics_;
  events::EventBus bus_;
  kube::EventRecorder recorder_;
  PeerTls tls_;

  kube::Informer clusters_;
  kube::Informer members_;
  kube::Informer volumes_;
  kube::Informer leases_;
  kube::Informer daemonsets_;

  std::unique_ptr<VIOSMemberReconciler> member_reconciler_;
  std::unique_ptr<VIOSClusterReconciler> cluster_reconciler_;
  std::unique_ptr<Controller> member_controller_;
  std::unique_ptr<Controller> cluster_controller_;
  std::unique_ptr<kube::LeaderElector> elector_;

  std::atomic<bool> leading_{false};
  std::atomic<bool> controllers_started_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
};

}  // namespace vios::op
