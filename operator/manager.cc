// Manager: informers, controllers and leader election (see manager.h).
#include "operator/manager.h"

#include "common/kube/cache.h"
#include "common/log/log.h"
#include "operator/member_events.h"

namespace vios::op {
namespace {

using nlohmann::json;

std::string ClusterKeyOf(const json& obj) {
  const json& md = obj["metadata"];
  if (!obj.contains("spec") || !obj["spec"].is_object()) return "";
  const std::string cluster = obj["spec"].value("cluster", "");
  if (cluster.empty()) return "";
  return md.value("namespace", "") + "/" + cluster;
}

std::string LabelKey(const json& obj, const char* label) {
  const json& md = obj["metadata"];
  if (!md.contains("labels") || !md["labels"].is_object()) return "";
  const std::string value = md["labels"].value(label, "");
  return value.empty() ? "" : md.value("namespace", "") + "/" + value;
}

kube::InformerOptions Labelled(const std::string& selector) {
  kube::InformerOptions o;
  o.label_selector = selector;
  return o;
}

}  // namespace

Manager::Manager(kube::Client& client, ManagerOptions options, metrics::Registry& registry,
                 WallClock clock)
    : client_(client),
      options_(std::move(options)),
      clock_(std::move(clock)),
      metrics_(registry),
      recorder_(client, {.reporting_controller = "vios.dev/operator",
                         .reporting_instance = options_.identity}),
      tls_(client, options_.pki, clock_),
      clusters_(client, kube::resources::kVIOSClusters, options_.watch_namespace),
      members_(client, kube::resources::kVIOSMembers, options_.watch_namespace),
      volumes_(client, kube::resources::kVIOSVolumes, options_.watch_namespace),
      leases_(client, kube::resources::kLeases, options_.watch_namespace, Labelled(kMemberLabel)),
      daemonsets_(client, kDaemonSets, options_.watch_namespace,
                  Labelled(std::string(kManagedByLabel) + "=" + kManagedByValue)) {
  Caches caches{clusters_, members_, volumes_, leases_, daemonsets_};
  auto is_leader = [this] { return IsLeader(); };
  member_reconciler_ = std::make_unique<VIOSMemberReconciler>(
      client_, caches, bus_, tls_, &metrics_, options_.member, clock_, is_leader);
  cluster_reconciler_ = std::make_unique<VIOSClusterReconciler>(
      client_, caches, tls_, &recorder_, &metrics_, options_.cluster, clock_, is_leader);
  member_controller_ = std::make_unique<Controller>(
      "viosmember", [this](const std::string& k) { return member_reconciler_->Reconcile(k); },
      &metrics_);
  cluster_controller_ = std::make_unique<Controller>(
      "vioscluster", [this](const std::string& k) { return cluster_reconciler_->Reconcile(k); },
      &metrics_);
  RegisterMemberListeners(bus_, &recorder_, &metrics_);
  WireInformers();
}

Manager::~Manager() {
  Stop();
  StopControllers();
  for (kube::Informer* i : {&clusters_, &members_, &volumes_, &leases_, &daemonsets_}) i->Stop();
}

void Manager::WireInformers() {
  Controller* members = member_controller_.get();
  Controller* clusters = cluster_controller_.get();
  auto enqueue = [](Controller* c, const std::string& key) {
    if (!key.empty()) c->Enqueue(key);
  };
  // A cluster's appearance or removal changes its members' admission.
  auto members_of = [this, members](const json& cluster) {
    const std::string ns = cluster["metadata"].value("namespace", "");
    for (const json& m : InCluster(members_, ns, cluster["metadata"].value("name", ""))) {
      members->Enqueue(kube::KeyOf(m));
    }
  };
  clusters_.AddHandler(
      {.on_add =
           [=](const json& o) {
             enqueue(clusters, kube::KeyOf(o));
             members_of(o);
           },
       .on_update = [=](const json&, const json& o) { enqueue(clusters, kube::KeyOf(o)); },
       .on_delete =
           [=](const json& o) {
             enqueue(clusters, kube::KeyOf(o));
             members_of(o);
           }});
  auto member_changed = [=](const json& o) {
    enqueue(members, kube::KeyOf(o));
    enqueue(clusters, ClusterKeyOf(o));
  };
  members_.AddHandler({.on_add = member_changed,
                       .on_update = [=](const json&, const json& o) { member_changed(o); },
                       .on_delete = member_changed});
  auto volume_changed = [=](const json& o) { enqueue(clusters, ClusterKeyOf(o)); };
  volumes_.AddHandler({.on_add = volume_changed,
                       .on_update = [=](const json&, const json& o) { volume_changed(o); },
                       .on_delete = volume_changed});
  auto lease_changed = [=](const json& o) { enqueue(members, LabelKey(o, kMemberLabel)); };
  leases_.AddHandler({.on_add = lease_changed,
                      .on_update = [=](const json&, const json& o) { lease_changed(o); },
                      .on_delete = lease_changed});
  auto ds_changed = [=](const json& o) { enqueue(clusters, LabelKey(o, kClusterLabel)); };
  daemonsets_.AddHandler({.on_add = ds_changed,
                          .on_update = [=](const json&, const json& o) { ds_changed(o); },
                          .on_delete = ds_changed});
}

bool Manager::IsLeader() const {
  if (!leading_.load()) return false;
  return elector_ == nullptr || elector_->IsLeader();
}

void Manager::StartLeading() {
  leading_ = true;
  metrics_.SetLeader(true);
  VIOS_LOG(kInfo, "leading: reconcilers started").Field("identity", options_.identity);
  // Everything cached is queued already (informer adds); queue again so nothing is missed
  // while the replica was standing by.
  for (const json& c : clusters_.List()) cluster_controller_->Enqueue(kube::KeyOf(c));
  for (const json& m : members_.List()) member_controller_->Enqueue(kube::KeyOf(m));
  member_controller_->Start(options_.workers);
  cluster_controller_->Start(options_.workers);
  controllers_started_ = true;
}

void Manager::StopControllers() {
  leading_ = false;
  metrics_.SetLeader(false);
  if (controllers_started_.exchange(false)) {
    member_controller_->Stop();
    cluster_controller_->Stop();
  }
  bus_.Flush();
}

bool Manager::Run() {
  for (kube::Informer* i : {&clusters_, &members_, &volumes_, &leases_, &daemonsets_}) i->Start();
  for (kube::Informer* i : {&clusters_, &members_, &volumes_, &leases_, &daemonsets_}) {
    if (!i->WaitForSync(options_.sync_timeout)) {
      VIOS_LOG(kError, "informer did not sync")
          .Field("timeout_ms", static_cast<int64_t>(options_.sync_timeout.count()));
      return false;
    }
  }
  VIOS_LOG(kInfo, "caches synced")
      .Field("clusters", static_cast<uint64_t>(clusters_.List().size()))
      .Field("members", static_cast<uint64_t>(members_.List().size()));

  if (!options_.leader_elect) {
    StartLeading();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return stopping_; });
    lock.unlock();
    StopControllers();
    return true;
  }

  kube::LeaderElectionConfig config;
  config.lease_namespace = options_.lease_namespace;
  config.lease_name = options_.lease_name;
  config.identity = options_.identity;
  config.lease_duration = options_.lease_duration;
  config.renew_deadline = options_.lease_duration * 2 / 3;
  config.retry_period = options_.lease_duration / 5;
  config.callbacks.on_started_leading = [this] { StartLeading(); };
  config.callbacks.on_stopped_leading = [this] {
    leading_ = false;
    metrics_.SetLeader(false);
  };
  config.callbacks.on_new_leader = [this](const std::string& who) {
    VIOS_LOG(kInfo, "leader observed").Field("leader", who).Field("self", options_.identity);
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return true;
    elector_ = std::make_unique<kube::LeaderElector>(client_, config);
  }
  elector_->Run();  // returns on Stop() (lease released) or lost leadership
  // Stop reconciling before anything else can happen: the successor may already be acting.
  StopControllers();
  std::lock_guard<std::mutex> lock(mu_);
  if (!stopping_) VIOS_LOG(kError, "leadership lost").Field("identity", options_.identity);
  return stopping_;
}

void Manager::Stop() {
  kube::LeaderElector* elector = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    elector = elector_.get();
  }
  // Stop acting first, then release the lease: the successor must not overlap with us.
  StopControllers();
  if (elector != nullptr) elector->Stop();
}

}  // namespace vios::op
