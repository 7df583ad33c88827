// ClusterAgent: registration, heartbeat, watches, view publication, local copy (cluster_agent.h).
#include "node-agent/cluster/cluster_agent.h"

#include <algorithm>

#include "common/kube/leader_election.h"
#include "common/log/log.h"

namespace vios::agent::cluster {
namespace {

using nlohmann::json;
namespace res = kube::resources;

std::vector<json> ToVector(const json& arr) {
  std::vector<json> out;
  if (arr.is_array()) {
    for (const auto& o : arr) {
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace

ClusterAgent::ClusterAgent(kube::Config config, ClusterAgentOptions options, events::EventBus& bus)
    : options_(std::move(options)), bus_(bus), store_(options_.state_dir) {
  if (options_.cluster.empty() || options_.ns.empty() || options_.member.empty()) {
    throw std::invalid_argument("ClusterAgent needs cluster, namespace and member names");
  }
  if (options_.state_dir.empty()) {
    throw std::invalid_argument("ClusterAgent needs a state directory");
  }
  // Heartbeat requests must fail well within a renew interval so that backoff, not a hanging
  // socket, decides when the next attempt happens.
  kube::Config reg = config;
  const auto renew =
      options_.renew_interval.count() > 0 ? options_.renew_interval : options_.lease_duration / 3;
  reg.request_timeout =
      std::min(reg.request_timeout, std::max(renew, std::chrono::milliseconds(1000)));
  reg.connect_timeout = std::min(reg.connect_timeout, reg.request_timeout);
  client_ = std::make_unique<kube::Client>(
      reg, kube::RetryPolicy{.max_attempts = 2,
                             .initial_backoff = std::chrono::milliseconds(100),
                             .max_backoff = std::chrono::milliseconds(500)});
  watch_client_ = std::make_unique<kube::Client>(config);
  recorder_ = std::make_unique<kube::EventRecorder>(
      *client_, kube::EventRecorderOptions{.reporting_controller = "vios.dev/agent",
                                           .reporting_instance = options_.member});
}

ClusterAgent::~ClusterAgent() { Stop(); }

void ClusterAgent::Start() {
  if (started_) {
    return;
  }
  started_ = true;
  LocalStateStore::LoadResult loaded = store_.Load();
  if (loaded.outcome == LocalStateStore::Outcome::kLoaded) {
    ClusterView v = BuildView(loaded.state.cluster, ToVector(loaded.state.members),
                              ToVector(loaded.state.volumes), options_.cluster, options_.member,
                              ClusterView::Origin::kLocalCopy);
    {
      std::lock_guard<std::mutex> lock(mu_);
      reservations_ = loaded.state.reservations;
      state_.serving_from_local_copy = true;
    }
    VIOS_LOG(kWarning, "serving from local copy until the API server answers")
        .Field("saved_at", loaded.state.saved_at)
        .Field("volumes", static_cast<uint64_t>(v.volumes.size()))
        .Field("peers", static_cast<uint64_t>(v.peers.size()));
    InstallView(std::move(v));
  } else if (loaded.outcome == LocalStateStore::Outcome::kCorrupt) {
    std::lock_guard<std::mutex> lock(mu_);
    state_.local_state_corrupt = true;
    state_.local_state_error =
        loaded.error +
        (loaded.moved_to.empty() ? std::string() : " (moved to " + loaded.moved_to + ")");
  }

  kube::InformerOptions io;
  io.max_backoff = options_.watch_max_backoff;
  io.watch_timeout_seconds = 60;
  kube::InformerOptions cluster_io = io;
  cluster_io.field_selector = "metadata.name=" + options_.cluster;
  kube::InformerOptions member_io = io;
  member_io.label_selector = std::string(kClusterLabel) + "=" + options_.cluster;
  // Volumes carry no per-agent label; the attachment says who serves them, so filter here.
  clusters_ =
      std::make_unique<kube::Informer>(*watch_client_, res::kVIOSClusters, options_.ns, cluster_io);
  members_ =
      std::make_unique<kube::Informer>(*watch_client_, res::kVIOSMembers, options_.ns, member_io);
  volumes_ = std::make_unique<kube::Informer>(*watch_client_, res::kVIOSVolumes, options_.ns, io);
  for (kube::Informer* inf : {clusters_.get(), members_.get(), volumes_.get()}) {
    inf->AddHandler({.on_add = [this](const json&) { MarkDirty(); },
                     .on_update = [this](const json&, const json&) { MarkDirty(); },
                     .on_delete = [this](const json&) { MarkDirty(); }});
    inf->Start();
  }
  reconcile_thread_ = std::thread([this] { ReconcileLoop(); });
  registration_thread_ = std::thread([this] { RegistrationLoop(); });
}

void ClusterAgent::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  for (kube::Informer* inf : {clusters_.get(), members_.get(), volumes_.get()}) {
    if (inf != nullptr) {
      inf->Stop();
    }
  }
  if (registration_thread_.joinable()) {
    registration_thread_.join();
  }
  if (reconcile_thread_.joinable()) {
    reconcile_thread_.join();
  }
}

ClusterView ClusterAgent::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_;
}

AgentState ClusterAgent::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  AgentState s = state_;
  s.origin = OriginName(view_.origin);
  return s;
}

void ClusterAgent::SetLocalStatus(LocalStatus status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status == local_status_) {
      return;
    }
    local_status_ = std::move(status);
    status_dirty_ = true;
  }
  cv_.notify_all();
}

void ClusterAgent::SetReservationCopy(const std::string& volume, json copy) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reservations_[volume] = std::move(copy);
    persist_pending_ = true;
    dirty_ = true;
  }
  cv_.notify_all();
}

bool ClusterAgent::WaitFor(const std::function<bool(const ClusterView&, const AgentState&)>& pred,
                           std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred(Snapshot(), State())) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool ClusterAgent::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  // Wake early for a status change so it reaches the VIOSMember without waiting a renew interval.
  // And for queued Events once there is a VIOSMember they can refer to.
  cv_.wait_for(lock, d, [&] {
    return stopping_ || status_dirty_ || (!event_queue_.empty() && !member_object_.is_null());
  });
  return !stopping_;
}

void ClusterAgent::MarkDirty() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

// --- registration and heartbeat -------------------------------------------------------------

void ClusterAgent::RegistrationLoop() {
  const auto renew =
      options_.renew_interval.count() > 0 ? options_.renew_interval : options_.lease_duration / 3;
  const kube::RetryPolicy backoff{.max_attempts = 0,
                                  .initial_backoff = options_.initial_backoff,
                                  .max_backoff = options_.max_backoff};
  bool registered = false;  // on this connection: re-register after every outage
  int failures = 0;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        return;
      }
    }
    try {
      if (!registered) {
        Register();
        registered = true;
      } else {
        bool status_dirty;
        {
          std::lock_guard<std::mutex> lock(mu_);
          status_dirty = status_dirty_;
        }
        if (status_dirty) {
          ApplyStatus();
        }
        RenewLease();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!state_.api_reachable && failures > 0) {
          VIOS_LOG(kInfo, "API server reachable again").Field("failures", failures);
        }
        state_.api_reachable = true;
        state_.registered = true;
        ++state_.heartbeats;
      }
      failures = 0;
      ReportCorruptStateOnce();
      SendQueuedEvents();
      if (!SleepFor(renew)) {
        return;
      }
    } catch (const std::exception& e) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        state_.api_reachable = false;
        ++state_.heartbeat_failures;
      }
      registered = false;
      // The first failure of an outage is a warning; the retries that follow are debug noise.
      log::Line(failures == 0 ? log::Level::kWarning : log::Level::kDebug,
                "registration or heartbeat failed; retrying with backoff", __FILE__, __LINE__)
          .Field("error", e.what())
          .Field("failures", failures + 1);
      const auto delay = kube::Backoff(backoff, std::min(failures, 20));
      ++failures;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, delay, [&] { return stopping_; });
    }
  }
}

void ClusterAgent::Register() {
  json member = {
      {"apiVersion", res::kVIOSMembers.ApiVersion()},
      {"kind", "VIOSMember"},
      {"metadata",
       {{"name", options_.member},
        {"namespace", options_.ns},
        {"labels", {{kClusterLabel, options_.cluster}}}}},
      {"spec", {{"cluster", options_.cluster}, {"nodeName", options_.member}}},
  };
  // force: spec and the label are the agent's by convention; take them over if someone else
  // (a human with kubectl apply) wrote them.
  json applied = client_->Apply(res::kVIOSMembers, options_.ns, options_.member, member,
                                kFieldManager, /*force=*/true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    member_object_ = applied;
    status_dirty_ = true;
  }
  ApplyStatus();
  RenewLease();
  VIOS_LOG(kInfo, "registered with cluster")
      .Field("cluster", options_.cluster)
      .Field("namespace", options_.ns)
      .Field("member", options_.member)
      .Field("peer_address", options_.peer_address);
}

void ClusterAgent::ApplyStatus() {
  LocalStatus ls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ls = local_status_;
    status_dirty_ = false;
  }
  json paths = json::array();
  int64_t healthy = 0;
  int64_t lost = 0;
  for (const PathState& p : ls.paths) {
    json e = {{"pool", p.pool}, {"backend", p.backend}, {"state", p.state}};
    if (!p.message.empty()) {
      e["message"] = p.message;
    }
    paths.push_back(std::move(e));
    healthy += p.state == "Healthy" ? 1 : 0;
    lost += p.state == "Lost" ? 1 : 0;
  }
  json status = {{"version", options_.version},
                 {"leaseName", options_.member},
                 {"lastHeartbeatTime", kube::MicroTimeNow()},
                 {"paths", std::move(paths)},
                 {"healthyPaths", healthy},
                 {"lostPaths", lost},
                 {"virtualPorts", ls.virtual_ports}};
  if (!options_.peer_address.empty()) {
    status["peerAddress"] = options_.peer_address;
  }
  json obj = {{"apiVersion", res::kVIOSMembers.ApiVersion()},
              {"kind", "VIOSMember"},
              {"metadata", {{"name", options_.member}, {"namespace", options_.ns}}},
              {"status", std::move(status)}};
  try {
    client_->ApplyStatus(res::kVIOSMembers, options_.ns, options_.member, obj, kFieldManager,
                         /*force=*/true);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    status_dirty_ = true;  // try again with the next heartbeat
    throw;
  }
}

json ClusterAgent::LeaseObject() {
  const int64_t seconds = std::max<int64_t>(1, (options_.lease_duration.count() + 999) / 1000);
  const std::string now = kube::MicroTimeNow();
  std::lock_guard<std::mutex> lock(mu_);
  if (acquire_time_.empty()) {
    acquire_time_ = now;
  }
  // acquireTime is always sent: with server-side apply, leaving out a field the manager owns
  // would delete it.
  return {{"apiVersion", res::kLeases.ApiVersion()},
          {"kind", "Lease"},
          {"metadata",
           {{"name", options_.member},
            {"namespace", options_.ns},
            // vios-operator watches Leases by the member label (operator/README.md).
            {"labels", {{kClusterLabel, options_.cluster}, {"vios.dev/member", options_.member}}}}},
          {"spec",
           {{"holderIdentity", options_.member},
            {"leaseDurationSeconds", seconds},
            {"acquireTime", acquire_time_},
            {"renewTime", now}}}};
}

void ClusterAgent::RenewLease() {
  client_->Apply(res::kLeases, options_.ns, options_.member, LeaseObject(), kFieldManager,
                 /*force=*/true);
}

void ClusterAgent::ReportCorruptStateOnce() {
  json regarding;
  std::string note;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!state_.local_state_corrupt || corrupt_reported_ || member_object_.is_null()) {
      return;
    }
    corrupt_reported_ = true;
    regarding = member_object_;
    note = "local cluster state was corrupt, re-fetched from the API server: " +
           state_.local_state_error;
  }
  if (note.size() > 1000) {
    note.resize(1000);  // events.k8s.io note limit is 1 kB
  }
  recorder_->Record(regarding, kube::EventType::kWarning, "LocalStateCorrupt", "Refetch", note);
}

bool ClusterAgent::RecordEvent(bool warning, const std::string& reason, const std::string& action,
                               const std::string& note, const std::string& throttle_key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t suppressed = 0;
    if (stopping_ || event_queue_.size() >= 64 ||
        !event_throttle_.Allow(throttle_key, EventThrottle::Clock::now(), &suppressed)) {
      return false;
    }
    std::string text = note;
    if (suppressed > 0) {
      text += " (" + std::to_string(suppressed) + " similar events suppressed before this one)";
    }
    if (text.size() > 1000) text.resize(1000);  // events.k8s.io note limit is 1 kB
    event_queue_.push_back(QueuedEvent{warning, reason, action, std::move(text)});
  }
  cv_.notify_all();
  return true;
}

void ClusterAgent::SendQueuedEvents() {
  std::vector<QueuedEvent> events;
  json regarding;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (event_queue_.empty() || member_object_.is_null()) return;
    // A few per heartbeat: the Lease renewal must not wait behind a long queue.
    const size_t n = std::min<size_t>(event_queue_.size(), 8);
    events.assign(event_queue_.begin(), event_queue_.begin() + static_cast<long>(n));
    event_queue_.erase(event_queue_.begin(), event_queue_.begin() + static_cast<long>(n));
    regarding = member_object_;
  }
  for (const QueuedEvent& e : events) {
    recorder_->Record(regarding, e.warning ? kube::EventType::kWarning : kube::EventType::kNormal,
                      e.reason, e.action, e.note);
  }
}

// --- view reconciliation --------------------------------------------------------------------

void ClusterAgent::ReconcileLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Poll while not all informers have synced: their last initial add can land before
      // HasSynced turns true, and an empty list delivers no event at all.
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_ || dirty_; });
      if (stopping_) {
        return;
      }
      const bool synced_view = view_.origin == ClusterView::Origin::kApiServer;
      if (!dirty_ && synced_view && !persist_pending_) {
        continue;
      }
      dirty_ = false;
    }
    try {
      Rebuild();
    } catch (const std::exception& e) {
      VIOS_LOG(kError, "rebuilding the cluster view failed").Field("error", e.what());
    }
  }
}

void ClusterAgent::Rebuild() {
  if (!clusters_->HasSynced() || !members_->HasSynced() || !volumes_->HasSynced()) {
    return;
  }
  LocalState copy;
  auto cluster = clusters_->Get(options_.ns, options_.cluster);
  copy.cluster = cluster ? TrimObject(*cluster) : json();
  std::vector<json> members;
  for (const json& m : members_->List()) {
    members.push_back(TrimObject(m));
    copy.members.push_back(members.back());
  }
  std::vector<json> volumes;
  for (const json& v : volumes_->List()) {
    if (ServesVolume(v, options_.cluster, options_.member)) {
      volumes.push_back(TrimObject(v));
      copy.volumes.push_back(volumes.back());
    }
  }
  ClusterView v = BuildView(copy.cluster, members, volumes, options_.cluster, options_.member,
                            ClusterView::Origin::kApiServer);
  bool was_local;
  bool persist;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_local = state_.serving_from_local_copy || view_.origin != ClusterView::Origin::kApiServer;
    copy.reservations = reservations_;
    persist = persist_pending_;
    persist_pending_ = false;
  }
  const bool changed = InstallView(std::move(v));
  if (was_local) {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.serving_from_local_copy) {
      VIOS_LOG(kInfo, "rejoined: view now from the API server, no longer the local copy");
    }
    state_.serving_from_local_copy = false;
  }
  // Save when the view changed, and also when only the objects did (this member's own status,
  // for one, changes no message but belongs in the copy).
  if (changed || was_local || persist || !(copy == last_saved_)) {
    last_saved_ = copy;
    try {
      store_.Save(copy);
    } catch (const std::exception& e) {
      VIOS_LOG(kError, "saving the local cluster state failed").Field("error", e.what());
    }
  }
}

bool ClusterAgent::InstallView(ClusterView view) {
  std::vector<events::Message> msgs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    msgs = DiffViews(view_, view, options_.member);
    for (const std::string& err : view.config_errors) {
      if (std::find(view_.config_errors.begin(), view_.config_errors.end(), err) ==
          view_.config_errors.end()) {
        VIOS_LOG(kError, "cluster configuration has a part this agent cannot use")
            .Field("error", err);
      }
    }
    const bool origin_changed = view_.origin != view.origin;
    view_ = std::move(view);
    if (!msgs.empty() || origin_changed) {
      ++state_.views_published;
    }
  }
  // Publish outside the lock: handlers may call Snapshot().
  for (events::Message& m : msgs) {
    bus_.Publish(std::move(m));
  }
  cv_.notify_all();
  return !msgs.empty();
}

}  // namespace vios::agent::cluster
