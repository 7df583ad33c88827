// Agent in cluster mode (DESIGN.md §5): registration through ClusterAgent, pools built from the
// VIOSCluster spec, saved ports restored after a restart, the peer channel with the certificate
// the operator issued, and the status this agent reports in its VIOSMember.
//
// One background thread (the cluster loop) does the slow work — opening SAN LUNs, reading the
// certificate Secret, writing status — so that nothing here blocks the data path or the bus.
#include <openssl/evp.h>

#include <algorithm>
#include <set>

#include "common/log/log.h"
#include "common/util/atomic_file.h"
#include "common/util/base64.h"
#include "node-agent/app/agent.h"
#include "node-agent/app/port_store.h"
#include "node-agent/peer/peer_client.h"
#include "node-agent/reservation/kube_pr_state_store.h"
#include "node-agent/router/peer_path.h"
#include "node-agent/router/router.h"

namespace vios::agent {
namespace {

constexpr auto kLoopInterval = std::chrono::seconds(2);
constexpr auto kCredentialsInterval = std::chrono::seconds(30);

// The operator's Secret with this member's peer certificate (operator/peer_tls.h).
std::string PeerTlsSecretName(const std::string& member) { return member + "-peer-tls"; }

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

class Agent::PeerReservationNotifier final : public reservation::PrPeerNotifier {
 public:
  explicit PeerReservationNotifier(Agent* agent) : agent_(agent) {}
  bool NotifyAll(const std::string& volume, uint64_t version, const std::string& state_json,
                 std::string* error) override {
    return agent_->NotifyPeers(volume, version, state_json, error);
  }
  bool QueryAll(const std::string& volume, std::vector<PeerState>* states,
                std::string* error) override {
    return agent_->QueryPeers(volume, states, error);
  }

 private:
  Agent* agent_;
};

std::shared_ptr<reservation::LocalPersistentReservations> Agent::MakeReservationPolicy(
    const std::string& id, bool cluster_volume) {
  std::shared_ptr<reservation::LocalPersistentReservations> policy;
  if (cluster_volume && pr_client_) {
    // Only a volume the cluster knows (a VIOSVolume) shares its reservations; a port made by
    // hand for a volume with no VIOSVolume keeps them locally. An unreachable API server
    // counts as "known": the policy then starts fenced until it can confirm its copy.
    try {
      pr_client_->Get(kube::resources::kVIOSVolumes, config_.cluster->ns, id);
    } catch (const std::exception& e) {
      if (kube::IsNotFound(e)) {
        VIOS_LOG(kInfo, "volume has no VIOSVolume: its reservations stay on this agent")
            .Field("volume", id);
        cluster_volume = false;
      }
    }
  }
  if (cluster_volume && pr_client_) {
    // The state lives in the VIOSVolume (same name as the volume, the cluster's namespace);
    // every agent serving the volume applies each change before the PR OUT completes.
    reservation::ClusterOptions options;
    options.volume = id;
    options.notifier = pr_notifier_.get();
    // Events about reservation changes name this member as their reporting instance.
    auto store = std::make_unique<reservation::KubePrStateStore>(pr_client_, config_.cluster->ns,
                                                                 id, config_.node_name);
    store->UseForReads(pr_read_client_);
    policy = std::make_shared<reservation::LocalPersistentReservations>(std::move(store), options);
  } else {
    // One agent: persisted under the state directory (APTPL) when there is one.
    std::unique_ptr<reservation::PrStateStore> store;
    if (!config_.state_dir.empty()) {
      std::string dir = config_.state_dir + "/reservations";
      std::string error;
      if (!util::MakeDirectories(dir, 0700, &error)) {
        throw PortError(PortError::Kind::kInternal, "volume " + id + ": " + error);
      }
      store = std::make_unique<reservation::FilePrStateStore>(dir + "/" + id + ".json");
    }
    policy = std::make_shared<reservation::LocalPersistentReservations>(std::move(store));
  }
  std::string error;
  if (!policy->Init(&error)) {
    throw PortError(PortError::Kind::kFailedPrecondition,
                    "volume " + id + ": reservation state unusable: " + error);
  }
  {
    std::lock_guard lock(pr_mu_);
    pr_policies_[id] = policy;
  }
  pr_collector_->Add(id, policy);
  return policy;
}

void Agent::ForgetReservationPolicy(const std::string& id) {
  pr_collector_->Remove(id);
  std::lock_guard lock(pr_mu_);
  pr_policies_.erase(id);
}

std::vector<Agent::ReservationPeer> Agent::ReservationPeers() const {
  std::vector<ReservationPeer> peers;
  if (!cluster_) return peers;
  cluster::ClusterView view = cluster_->Snapshot();
  std::lock_guard lock(peer_links_mu_);
  for (const auto& [name, peer] : view.peers) {
    if (peer.state == "Leaving") continue;  // Shutting down cleanly: no longer a writer.
    auto link = peer_links_.find(name);
    peers.push_back(
        {name, link == peer_links_.end() ? nullptr : link->second.channel, peer.state == "Up"});
  }
  return peers;
}

bool Agent::NotifyPeers(const std::string& volume, uint64_t version, const std::string& state_json,
                        std::string* error) {
  // Every peer is told. One the operator marks Down may be skipped when it does not answer:
  // its Lease expired longer ago than the reservation lease, so a copy it may still hold is no
  // longer trusted by itself (reservation README). But Down is only what the view says: a peer
  // that just got back to the API server (its copy confirmed again) may still show Down for a
  // moment, so it is told like the others when it answers.
  std::vector<std::string> failed;
  for (const ReservationPeer& p : ReservationPeers()) {
    if (!p.channel) {
      if (p.up) failed.push_back(p.name + " (no channel)");
      continue;
    }
    peer::ReservationResult r = peer::ApplyReservationOn(
        p.channel, p.name, config_.node_name, volume, version, state_json, kPeerRpcDeadline);
    if (p.up && !r.applied) failed.push_back(p.name + " (" + r.error + ")");
  }
  if (failed.empty()) return true;
  *error = "not confirmed by";
  for (const std::string& f : failed) *error += " " + f;
  return false;
}

bool Agent::QueryPeers(const std::string& volume,
                       std::vector<reservation::PrPeerNotifier::PeerState>* states,
                       std::string* error) {
  if (!cluster_) {
    *error = "not in a cluster";
    return false;
  }
  // Every member this agent knows of is asked, Down ones too: while the API server is away the
  // view may be stale, and a member it shows Down may be a writer again (reservation README).
  std::vector<std::string> failed;
  for (const ReservationPeer& p : ReservationPeers()) {
    peer::ReservationCopy copy;
    std::string why;
    if (!p.channel) {
      failed.push_back(p.name + " (no channel)");
    } else if (!peer::QueryReservationOn(p.channel, p.name, config_.node_name, volume,
                                         kPeerRpcDeadline, &copy, &why)) {
      failed.push_back(p.name + " (" + why + ")");
    } else if (copy.served && !copy.confirmed) {
      failed.push_back(p.name + " (its copy is not confirmed either)");
    } else if (copy.served) {
      states->push_back({copy.version, std::move(copy.state_json)});
    }
  }
  if (failed.empty()) return true;
  *error = "not answered by";
  for (const std::string& f : failed) *error += " " + f;
  return false;
}

std::shared_ptr<reservation::LocalPersistentReservations> Agent::FindReservationPolicy(
    const std::string& volume) {
  std::lock_guard lock(pr_mu_);
  auto it = pr_policies_.find(volume);
  return it == pr_policies_.end() ? nullptr : it->second.lock();
}

peer::ReservationCopy Agent::QueryLocalReservation(const std::string& volume) {
  std::shared_ptr<reservation::LocalPersistentReservations> policy = FindReservationPolicy(volume);
  peer::ReservationCopy copy;
  if (!policy) return copy;  // Not served here: no copy, not a witness.
  copy.served = true;
  copy.confirmed = policy->Current(&copy.version, &copy.state_json);
  return copy;
}

peer::ReservationResult Agent::ApplyPeerReservation(const std::string& volume, uint64_t version,
                                                    const std::string& state_json) {
  std::shared_ptr<reservation::LocalPersistentReservations> policy = FindReservationPolicy(volume);
  // Not served here: there is no copy to update (opening it later reads the VIOSVolume).
  if (!policy) return peer::ReservationResult{true, version, ""};
  std::string error;
  bool applied = policy->Apply(version, state_json, &error);
  return peer::ReservationResult{applied, version, error};
}

void Agent::JoinCluster() {
  const ClusterMembershipConfig& m = *config_.cluster;
  kube::Config kube_config;
  try {
    kube_config =
        m.kubeconfig.empty() ? kube::LoadDefaultConfig() : kube::LoadKubeconfig(m.kubeconfig);
  } catch (const std::exception& e) {
    throw AgentError(std::string("cluster: ") + e.what());
  }
  kube::RetryPolicy retry;
  retry.max_attempts = 1;  // The cluster loop retries on its own schedule.
  kube_ = std::make_unique<kube::Client>(kube_config, retry);
  // One attempt, short timeouts: a reservation copy must be re-confirmed within its lease
  // (10 s) — through the peers when the API server does not answer — so a store read may not
  // hang for the defaults (30 s, retried). A PR OUT whose store write fails answers ABORTED
  // COMMAND, which initiators retry.
  kube::RetryPolicy pr_retry;
  pr_retry.max_attempts = 2;
  pr_client_ = std::make_shared<kube::Client>(kube_config, pr_retry);
  // Reservation copies are re-read with one attempt and short timeouts: a copy must be
  // re-confirmed within its lease (10 s) — through the peers when the API server does not
  // answer — so a read may not hang for the defaults (30 s, retried). Writes keep pr_client_.
  kube::Config pr_read_config = kube_config;
  pr_read_config.connect_timeout = std::chrono::milliseconds(1000);
  pr_read_config.request_timeout = std::chrono::milliseconds(2500);
  kube::RetryPolicy pr_read_retry;
  pr_read_retry.max_attempts = 1;
  pr_read_client_ = std::make_shared<kube::Client>(pr_read_config, pr_read_retry);
  pr_notifier_ = std::make_unique<PeerReservationNotifier>(this);
  bus_->RegisterListenerForAll("log", [](const events::Message& message) {
    VIOS_LOG(kInfo, "cluster message")
        .Field("type", events::MessageTypeName(message.type))
        .Field("source", message.source)
        .Field("subject", message.subject)
        .Field("text", message.text)
        .Field("warning", events::IsWarning(message.type));
  });
  // A changed spec (pools) is applied by the cluster loop; the handler only wakes it.
  bus_->RegisterHandler(events::MessageType::kConfigChanged, "apply-cluster-config",
                        [this](const events::Message&) {
                          {
                            std::lock_guard lock(cluster_mu_);
                            config_changed_ = true;
                          }
                          cluster_cv_.notify_all();
                          return events::HandlerResult::Ok();
                        });
  cluster::ClusterAgentOptions options;
  options.cluster = m.name;
  options.ns = m.ns;
  options.member = config_.node_name;
  options.peer_address = m.peer_address;
  options.version = VIOS_VERSION;
  options.state_dir = config_.state_dir;
  cluster_ = std::make_unique<cluster::ClusterAgent>(std::move(kube_config), options, *bus_);
  cluster_->Start();
  {
    std::lock_guard lock(event_sink_mu_);
    event_sink_ = cluster_.get();
  }
  cluster_thread_ = std::thread([this] { ClusterLoop(); });
  VIOS_LOG(kInfo, "joining cluster")
      .Field("cluster", m.ns + "/" + m.name)
      .Field("member", config_.node_name)
      .Field("peer_address", m.peer_address);
}

void Agent::LeaveCluster() {
  if (cluster_thread_.joinable()) {
    {
      std::lock_guard lock(cluster_mu_);
      cluster_stop_ = true;
    }
    cluster_cv_.notify_all();
    cluster_thread_.join();
  }
  if (peer_server_) peer_server_->Stop();
  peer_server_.reset();
  {
    std::lock_guard lock(event_sink_mu_);
    event_sink_ = nullptr;
  }
  if (cluster_) cluster_->Stop();
  cluster_.reset();
  {
    std::shared_lock lock(routers_mu_);
    for (const auto& [key, router] : routers_) {
      for (router::Path* path : router->Paths()) {
        if (path != router->Paths().front()) router->RemovePath(path->Name());
      }
    }
  }
  {
    std::lock_guard links_lock(peer_links_mu_);
    peer_links_.clear();
  }
  kube_.reset();
}

void Agent::ClusterLoop() {
  std::unique_lock lock(cluster_mu_);
  while (!cluster_stop_) {
    bool changed = std::exchange(config_changed_, false);
    lock.unlock();
    bool retry_backends = false;
    {
      std::lock_guard agent_lock(mu_);
      retry_backends = !backend_errors_.empty();
    }
    if (changed) ApplyClusterPaths();
    if (changed || retry_backends) ApplyClusterPools();
    RestorePorts();
    EnsurePeerServer();
    SyncPeerPaths();
    ReportStatus();
    lock.lock();
    cluster_cv_.wait_for(lock, kLoopInterval, [this] { return cluster_stop_ || config_changed_; });
  }
}

void Agent::ApplyClusterPools() {
  cluster::ClusterView view = cluster_->Snapshot();
  if (!view.config) return;
  for (const std::string& problem : view.config_errors) {
    VIOS_LOG(kWarning, "cluster spec problem").Field("error", problem);
  }
  for (const PoolConfig& pool_config : view.config->pools) {
    for (const BackendConfig& b : pool_config.backends) {
      const auto key = std::make_pair(pool_config.name, b.name);
      {
        std::lock_guard lock(mu_);
        auto pool = pools_.find(pool_config.name);
        if (pool != pools_.end()) {
          if (pool->second->extent_size() != pool_config.extent_size) {
            VIOS_LOG(kWarning, "pool extent size changed in the spec; kept until restart")
                .Field("pool", pool_config.name);
          }
          if (pool->second->Backend(b.name) != nullptr) continue;
        }
      }
      // Opening a SAN LUN can take seconds: outside mu_, so the data path and the API go on.
      std::string error;
      std::unique_ptr<backend::BlockDevice> device = OpenBackendDevice(b, &error);
      std::lock_guard lock(mu_);
      if (device && AddBackendLocked(pool_config, b, std::move(device), &error)) {
        backend_errors_.erase(key);
        continue;
      }
      auto [it, inserted] = backend_errors_.insert({key, error});
      if (inserted || it->second != error) {
        it->second = error;
        VIOS_LOG(kWarning, "cannot open backend; will retry")
            .Field("pool", pool_config.name)
            .Field("backend", b.name)
            .Field("error", error);
      }
    }
  }
}

void Agent::ApplyClusterPaths() {
  cluster::ClusterView view = cluster_->Snapshot();
  if (!view.config) return;
  // spec.paths (the CRD validates and defaults it); a field missing or unreadable keeps the
  // agent's own setting, with a warning for the unreadable.
  PathsConfig paths = config_.paths;
  const nlohmann::json& spec = view.config->spec;
  const nlohmann::json p =
      spec.is_object() && spec.contains("paths") ? spec["paths"] : nlohmann::json::object();
  auto duration = [&p](const char* key, std::chrono::milliseconds* out) {
    if (!p.contains(key)) return;
    std::optional<std::chrono::milliseconds> d;
    if (p[key].is_string()) d = ParseDuration(p[key].get<std::string>());
    if (d && d->count() > 0) {
      *out = *d;
    } else {
      VIOS_LOG(kWarning, "spec.paths: not a duration; kept").Field("field", key);
    }
  };
  if (p.is_object()) {
    duration("probeInterval", &paths.probe_interval);
    duration("ioTimeout", &paths.io_timeout);
    if (p.contains("failureThreshold") && p["failureThreshold"].is_number_unsigned() &&
        p["failureThreshold"].get<uint64_t>() >= 1) {
      paths.failure_threshold = static_cast<unsigned>(p["failureThreshold"].get<uint64_t>());
    }
    if (p.contains("reroute") && p["reroute"].is_boolean()) paths.reroute = p["reroute"];
    if (p.contains("peerDataProtection")) {
      const nlohmann::json& v = p["peerDataProtection"];
      peer::DataProtection protection;
      if (v.is_string() && peer::ParseDataProtection(v.get<std::string>(), &protection)) {
        paths.peer_data_integrity = protection == peer::DataProtection::kIntegrity;
      } else {
        VIOS_LOG(kWarning, "spec.paths: not encrypt or integrity; kept")
            .Field("field", "peerDataProtection");
      }
    }
  }
  std::lock_guard lock(mu_);
  if (paths == paths_ && paths_from_cluster_) return;
  paths_from_cluster_ = true;
  VIOS_LOG(kInfo, "path settings from the cluster spec")
      .Field("probe_interval_ms", paths.probe_interval.count())
      .Field("failure_threshold", paths.failure_threshold)
      .Field("reroute", paths.reroute)
      .Field("io_timeout_ms", paths.io_timeout.count())
      .Field("peer_data_protection", paths.peer_data_integrity ? "integrity" : "encrypt");
  SetPathsLocked(paths);
}

void Agent::SavePortsLocked() {
  if (config_.state_dir.empty()) return;
  std::vector<PortRequest> requests = pending_ports_;
  for (const auto& [name, port] : ports_) {
    if (!port.from_config) requests.push_back(port.request);
  }
  std::string error;
  if (!PortStore(config_.state_dir).Save(requests, &error)) {
    VIOS_LOG(kError, "cannot save virtual ports").Field("error", error);
  }
}

void Agent::RestorePorts() {
  std::lock_guard lock(mu_);
  RestorePortsLocked();
}

void Agent::RestorePortsLocked() {
  if (pending_ports_.empty()) return;
  std::vector<PortRequest> waiting;
  for (PortRequest& request : pending_ports_) {
    if (ports_.count(request.name)) continue;
    if (!pools_.count(request.pool)) {
      waiting.push_back(std::move(request));
      continue;
    }
    try {
      AddPortLocked(request);
      VIOS_LOG(kInfo, "virtual port restored").Field("port", request.name);
    } catch (const std::exception& e) {
      // A saved port that can no longer be built (its backend shrank, a name clash) is dropped
      // with the reason; the CSI node plugin recreates what it still needs.
      VIOS_LOG(kError, "cannot restore virtual port; dropped")
          .Field("port", request.name)
          .Field("error", e.what());
    }
  }
  bool changed = waiting.size() != pending_ports_.size();
  pending_ports_ = std::move(waiting);
  if (changed) SavePortsLocked();
}

void Agent::EnsurePeerServer() {
  const ClusterMembershipConfig& m = *config_.cluster;
  if (m.peer_listen.empty() || config_.state_dir.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (peer_server_ && now < next_credentials_check_) return;
  next_credentials_check_ = now + kCredentialsInterval;

  // Refresh the saved credentials from the Secret; when the API server is away, the saved ones
  // serve (the server re-reads its files, so a rotation needs no restart).
  const std::string dir = config_.state_dir + "/peer";
  const std::string secret_name = PeerTlsSecretName(config_.node_name);
  std::string error;
  try {
    nlohmann::json secret = kube_->Get(kube::resources::kSecrets, m.ns, secret_name);
    const nlohmann::json data = secret.value("data", nlohmann::json::object());
    for (const char* key : {"ca.crt", "tls.crt", "tls.key"}) {
      std::optional<std::string> bytes;
      if (data.contains(key) && data[key].is_string()) bytes = util::Base64Decode(data[key]);
      if (!bytes || bytes->empty()) throw std::runtime_error(std::string("no valid ") + key);
      if (util::ReadFile(dir + "/" + key, &error).value_or("") != *bytes &&
          !util::WriteFileAtomically(dir + "/" + key, *bytes, 0600, &error)) {
        throw std::runtime_error(error);
      }
    }
  } catch (const std::exception& e) {
    if (!peer_server_) {
      VIOS_LOG(kInfo, "peer certificate not available yet")
          .Field("secret", m.ns + "/" + secret_name)
          .Field("reason", e.what());
      next_credentials_check_ = now + kLoopInterval;
    }
  }
  if (peer_server_) return;
  std::string cert = util::ReadFile(dir + "/tls.crt", &error).value_or("");
  if (cert.empty()) return;
  peer::PeerServerOptions options;
  options.listen_address = m.peer_listen;
  // The data channel listens on the same host, on peerDataPort or a port of the system's choosing;
  // Health reports it to peers (node-agent/peer/peer_data.h).
  options.data_listen_address =
      m.peer_listen.substr(0, m.peer_listen.rfind(':')) + ":" + std::to_string(m.peer_data_port);
  options.data_allow_integrity = DataProtectionSetting() == peer::DataProtection::kIntegrity;
  options.member = config_.node_name;
  options.version = VIOS_VERSION;
  options.tls = peer::PeerTls{dir + "/ca.crt", dir + "/tls.crt", dir + "/tls.key"};
  // A peer asks whether this agent reaches a backend ITSELF (its local path), and has I/O run
  // on the local device only: forwarding a peer's request again could loop.
  options.backends = [this] {
    std::vector<peer::BackendReachability> out;
    std::shared_lock lock(routers_mu_);
    for (const auto& [key, router] : routers_) {
      out.push_back(peer::BackendReachability{
          key.first, key.second, router->local_path()->Health() != router::PathHealth::kLost});
    }
    return out;
  };
  options.reservation_applier = [this](const std::string& volume, uint64_t version,
                                       const std::string& state_json, const std::string&) {
    return ApplyPeerReservation(volume, version, state_json);
  };
  options.reservation_query = [this](const std::string& volume) {
    return QueryLocalReservation(volume);
  };
  options.local_devices = [this](const std::string& pool,
                                 const std::string& backend) -> backend::BlockDevice* {
    router::Router* router = FindRouter(pool, backend);
    return router != nullptr ? router->local_backend() : nullptr;
  };
  auto server = std::make_unique<peer::PeerServer>(std::move(options), *bus_);
  try {
    server->Start();
  } catch (const std::exception& e) {
    VIOS_LOG(kError, "cannot start the peer channel; will retry")
        .Field("address", m.peer_listen)
        .Field("error", e.what());
    next_credentials_check_ = now + kLoopInterval;
    return;
  }
  peer_tls_fingerprint_ = Sha256Hex(cert).substr(0, 16);
  peer::PeerServer* raw = server.get();
  router_metrics_->SetServedSource([raw] { return raw->GetStats().io_served; });
  peer_server_ = std::move(server);
  VIOS_LOG(kInfo, "peer channel listening")
      .Field("address", m.peer_listen)
      .Field("certificate_sha256", peer_tls_fingerprint_);
}

void Agent::SyncPeerPaths() {
  if (!peer_server_) return;  // No certificate yet: no channel to peers either.
  const std::string dir = config_.state_dir + "/peer";
  const peer::PeerTls tls{dir + "/ca.crt", dir + "/tls.crt", dir + "/tls.key"};
  cluster::ClusterView view = cluster_->Snapshot();
  // spec.paths.reroute false: no peer paths (I/O waits for the local path up to ioTimeout); the
  // channels stay for the cluster's other traffic and for peers' requests.
  const bool reroute = RerouteEnabled();  // before peer_links_mu_: mu_ is never taken inside it
  const peer::DataProtection protection = DataProtectionSetting();  // likewise
  std::map<std::string, std::string> wanted;                        // member -> peer address
  for (const auto& [name, peer] : view.peers) {
    if (!peer.peer_address.empty() && peer.state != "Leaving") wanted[name] = peer.peer_address;
  }
  std::lock_guard links_lock(peer_links_mu_);
  std::set<std::string> replaced;  // Members whose address changed: their paths use old channels.
  for (auto it = peer_links_.begin(); it != peer_links_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second.address) {
      ++it;
      continue;
    }
    if (w != wanted.end()) replaced.insert(it->first);
    it = peer_links_.erase(it);
  }
  for (const auto& [name, address] : wanted) {
    if (peer_links_.count(name)) continue;
    try {
      peer_links_[name] = PeerLink{address, peer::MakePeerChannel(address, name, tls)};
    } catch (const std::exception& e) {
      VIOS_LOG(kWarning, "cannot open the peer channel")
          .Field("peer", name)
          .Field("error", e.what());
    }
  }
  std::shared_lock lock(routers_mu_);
  for (const auto& [key, router] : routers_) {
    std::set<std::string> present;
    for (router::Path* path : router->Paths()) {
      if (path == router->Paths().front()) continue;
      const std::string member = path->Name().substr(5);  // "peer:<member>"
      auto link = peer_links_.find(member);
      // A path made under another spec.paths.peerDataProtection is replaced (its requests in
      // flight are retried on the others), so a change applies to every data connection.
      const auto* peer_path = dynamic_cast<router::PeerPath*>(path);
      const bool stale = peer_path != nullptr && peer_path->data_protection() != protection;
      if (link == peer_links_.end() || replaced.count(member) || !reroute || stale) {
        router->RemovePath(path->Name());
        VIOS_LOG(kInfo, "peer path removed").Field("backend", router->name()).Field("peer", member);
      } else {
        present.insert(member);
      }
    }
    for (const auto& [member, link] : peer_links_) {
      if (present.count(member) || !reroute) continue;
      router::PeerPathOptions options;
      options.pool = key.first;
      options.backend = key.second;
      options.peer = member;
      options.self = config_.node_name;
      options.size_bytes = router->SizeBytes();
      options.block_size = router->BlockSize();
      options.data_host = link.address.substr(0, link.address.rfind(':'));
      if (options.data_host.size() >= 2 && options.data_host.front() == '[') {
        options.data_host = options.data_host.substr(1, options.data_host.size() - 2);
      }
      options.data_tls = tls;
      options.data_protection = protection;
      options.on_change = [this, backend = router->name(), member](router::PathHealth from,
                                                                   router::PathHealth to,
                                                                   const std::string& reason) {
        PublishRouterEvent(router::RouterEvent{router::RouterEvent::Kind::kPathHealth, backend,
                                               "peer:" + member, from, to, reason});
      };
      auto path = std::make_unique<router::PeerPath>(link.channel, options);
      path->Start();
      if (router->AddPath(std::move(path))) {
        VIOS_LOG(kInfo, "peer path added").Field("backend", router->name()).Field("peer", member);
      }
    }
  }
}

void Agent::ReportStatus() {
  AgentInfo info = Info();
  cluster::LocalStatus status;
  for (const PathInfo& p : info.paths) {
    status.paths.push_back(cluster::PathState{p.pool, p.backend, p.state, p.detail});
  }
  status.virtual_ports = info.virtual_ports;
  cluster_->SetLocalStatus(std::move(status));  // Written only when it changed.
}

}  // namespace vios::agent
