#include "node-agent/app/agent.h"

#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "common/log/log.h"
#include "node-agent/app/port_store.h"
#include "node-agent/backend/file_backend.h"
#include "node-agent/backend/iscsi_backend.h"
#include "node-agent/pool/extent_allocator.h"
#include "node-agent/router/router.h"

namespace vios::agent {
namespace {

// SplitHostPort parses "host:port" (IPv4 or a name; "[v6]:port" too).
std::pair<std::string, uint16_t> SplitHostPort(const std::string& address, const char* what) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    throw AgentError(std::string(what) + " '" + address + "' is not host:port");
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw AgentError(std::string(what) + " '" + address + "' has no valid port");
  }
  if (port > 65535) throw AgentError(std::string(what) + " '" + address + "' has no valid port");
  return {host, static_cast<uint16_t>(port)};
}

// OpenIscsiBackend logs in to a SAN LUN with libiscsi, as the configured initiator (a
// pass-through LUN uses the virtual port's own initiator name: the NPIV analogue).
std::unique_ptr<backend::BlockDevice> OpenIscsiBackend(const IscsiBackendConfig& config,
                                                       const std::string& node_name,
                                                       std::string* error) {
  backend::IscsiBackendOptions options;
  options.portal = config.portal;
  options.target = config.iqn;
  options.lun = static_cast<int>(config.lun);
  if (!config.initiator_name.empty()) {
    options.initiator_name = config.initiator_name;
  } else if (!node_name.empty()) {
    options.initiator_name = "iqn.2026-11.dev.vios:agent:" + node_name;
  }
  if (config.chap) {
    options.chap_user = config.chap->user;
    options.chap_secret = config.chap->secret;
  }
  return backend::IscsiBackend::Open(options, error);
}

// IqnPart makes a string safe inside an IQN: lower case, [a-z0-9.-], nothing else.
std::string IqnPart(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    out.push_back(ok ? c : '-');
  }
  return out;
}

std::vector<pool::Extent> ToPoolExtents(const std::vector<PortExtent>& in) {
  std::vector<pool::Extent> out;
  for (const PortExtent& e : in) out.push_back(pool::Extent{e.backend, e.offset, e.length});
  return out;
}

bool SameRequest(const PortRequest& a, const PortRequest& b) {
  return a.volume_id == b.volume_id && a.pool == b.pool && a.extents == b.extents &&
         a.transport == b.transport && a.allowed_initiators == b.allowed_initiators &&
         a.chap_user == b.chap_user && a.chap_secret == b.chap_secret &&
         a.mutual_user == b.mutual_user && a.mutual_secret == b.mutual_secret &&
         a.read_only == b.read_only;
}

}  // namespace

std::unique_ptr<Agent> Agent::Create(const AgentConfig& config) {
  std::unique_ptr<Agent> agent(new Agent(config));
  agent->OpenBackends();
  agent->BuildConfiguredVolumes();
  agent->BuildConfiguredPorts();
  return agent;
}

Agent::Agent(AgentConfig config) : config_(std::move(config)), paths_(config_.paths) {}

Agent::~Agent() { Stop(); }

std::unique_ptr<backend::BlockDevice> Agent::OpenBackendDevice(const BackendConfig& b,
                                                               std::string* error) const {
  if (b.file || b.device) {
    backend::FileBackendOptions options;
    options.path = b.file ? b.file->path : b.device->path;
    options.size_bytes = b.file ? b.file->size : 0;
    options.create = b.file && b.file->create;
    return backend::FileBackend::Open(options, error);
  }
  return OpenIscsiBackend(*b.iscsi, config_.node_name, error);
}

bool Agent::AddBackendLocked(const PoolConfig& pool_config, const BackendConfig& b,
                             std::unique_ptr<backend::BlockDevice> device, std::string* error) {
  auto& pool = pools_[pool_config.name];
  if (!pool) pool = std::make_unique<pool::Pool>(pool_config.name, pool_config.extent_size);
  VIOS_LOG(kInfo, "backend open")
      .Field("pool", pool_config.name)
      .Field("backend", b.name)
      .Field("device", device->Describe())
      .Field("bytes", device->SizeBytes());
  auto* iscsi = dynamic_cast<backend::IscsiBackend*>(device.get());
  if (!pool->AddBackend(b.name, std::move(device), error)) return false;
  router::Router* router = pool->Backend(b.name);
  collector_->AddIo("backend", b.name, &router->Paths().front()->counters(), nullptr);
  // Path health (DESIGN.md §6): active probes of the local path, transitions on the bus; a SAN
  // session whose I/O stalls is reset so its commands retry on a peer at once.
  router::RouterOptions options;
  options.io_timeout = paths_.io_timeout;  // paths: standalone YAML or VIOSCluster spec.paths
  options.on_event = [this](const router::RouterEvent& e) { PublishRouterEvent(e); };
  if (iscsi != nullptr) {
    options.local_stalled = [iscsi] { iscsi->ResetSession("local I/O outlived its timeout"); };
  }
  router->SetOptions(std::move(options));
  router->SetProbing(paths_.probe_interval, paths_.failure_threshold);
  router_metrics_->AddRouter(pool_config.name, b.name, router);
  std::unique_lock routers_lock(routers_mu_);
  routers_[{pool_config.name, b.name}] = router;
  return true;
}

void Agent::SetPathsLocked(const PathsConfig& paths) {
  paths_ = paths;
  if (peer_server_) peer_server_->SetDataAllowIntegrity(paths.peer_data_integrity);
  std::shared_lock routers_lock(routers_mu_);
  for (const auto& [key, router] : routers_) {
    router->SetIoTimeout(paths.io_timeout);
    router->SetProbing(paths.probe_interval, paths.failure_threshold);
  }
}

bool Agent::RerouteEnabled() const {
  std::lock_guard lock(mu_);
  return paths_.reroute;
}

peer::DataProtection Agent::DataProtectionSetting() const {
  std::lock_guard lock(mu_);
  return paths_.peer_data_integrity ? peer::DataProtection::kIntegrity
                                    : peer::DataProtection::kEncrypt;
}

router::Router* Agent::FindRouter(const std::string& pool, const std::string& backend) const {
  std::shared_lock lock(routers_mu_);
  auto it = routers_.find({pool, backend});
  return it == routers_.end() ? nullptr : it->second;
}

void Agent::PublishRouterEvent(const router::RouterEvent& e) {
  events::Message m;
  m.source = config_.node_name;
  m.subject = "backend/" + e.router;
  m.attributes = {{"path", e.path}, {"reason", e.reason}};
  switch (e.kind) {
    case router::RouterEvent::Kind::kRerouteStarted:
      m.type = events::MessageType::kRerouteStarted;
      m.text = "local path lost: I/O goes through peers";
      break;
    case router::RouterEvent::Kind::kRerouteEnded:
      m.type = events::MessageType::kRerouteEnded;
      m.text = "local path back: failed back";
      break;
    case router::RouterEvent::Kind::kPathHealth:
      m.type = e.to == router::PathHealth::kLost       ? events::MessageType::kPathLost
               : e.to == router::PathHealth::kDegraded ? events::MessageType::kPathDegraded
                                                       : events::MessageType::kPathRestored;
      m.text = std::string("path ") + e.path + " " + router::PathHealthName(e.from) + " -> " +
               router::PathHealthName(e.to);
      break;
  }
  bus_->Publish(std::move(m));
  RecordPathEvent(e);
}

void Agent::RecordPathEvent(const router::RouterEvent& e) {
  // Kubernetes Events on this member's VIOSMember (cluster mode), throttled per backend, path and
  // reason by the ClusterAgent so a flapping path cannot flood the API server.
  std::string reason;
  bool warning = true;
  std::string note = "backend " + e.router + ": ";
  switch (e.kind) {
    case router::RouterEvent::Kind::kRerouteStarted:
      reason = "ReroutingStarted";
      note += "local path lost (" + e.reason + "): I/O goes through peers";
      break;
    case router::RouterEvent::Kind::kRerouteEnded:
      reason = "ReroutingEnded";
      warning = false;
      note += "local path healthy again: I/O failed back to it";
      break;
    case router::RouterEvent::Kind::kPathHealth:
      reason = e.to == router::PathHealth::kLost       ? "PathLost"
               : e.to == router::PathHealth::kDegraded ? "PathDegraded"
                                                       : "PathRecovered";
      warning = e.to != router::PathHealth::kHealthy;
      note += "path " + e.path + " " + router::PathHealthName(e.from) + " -> " +
              router::PathHealthName(e.to) + " (" + e.reason + ")";
      break;
  }
  std::lock_guard lock(event_sink_mu_);
  if (event_sink_ != nullptr) {
    const char* action = e.kind == router::RouterEvent::Kind::kRerouteStarted ? "Reroute"
                         : e.kind == router::RouterEvent::Kind::kRerouteEnded ? "Failback"
                                                                              : "PathHealth";
    event_sink_->RecordEvent(warning, reason, action, note, reason + "/" + e.router + "/" + e.path);
  }
}

void Agent::OpenBackends() {
  std::lock_guard lock(mu_);
  for (const PoolConfig& pool_config : config_.pools) {
    for (const BackendConfig& b : pool_config.backends) {
      std::string where = "pools." + pool_config.name + ".backends." + b.name;
      std::string error;
      std::unique_ptr<backend::BlockDevice> device = OpenBackendDevice(b, &error);
      if (!device || !AddBackendLocked(pool_config, b, std::move(device), &error)) {
        throw AgentError(where + ": " + error);
      }
    }
  }
}

void Agent::BuildConfiguredVolumes() {
  // Explicit extent maps are claimed first, then sized volumes are allocated first-fit in file
  // order, so the same configuration yields the same extent map on every start.
  std::map<std::string, pool::ExtentAllocator> allocators;
  for (const auto& [name, pool] : pools_) {
    pool::ExtentAllocator allocator(pool->extent_size());
    for (const std::string& backend : pool->BackendNames()) {
      allocator.AddBackend(backend, pool->Backend(backend)->SizeBytes());
    }
    allocators.emplace(name, std::move(allocator));
  }
  std::map<std::string, std::vector<pool::Extent>> extents;
  for (const VolumeConfig& v : config_.volumes) {
    if (v.extents.empty()) continue;
    auto& list = extents[v.name];
    for (const ExtentConfig& e : v.extents)
      list.push_back(pool::Extent{e.backend, e.offset, e.length});
    std::string error;
    if (!allocators.at(v.pool).MarkUsed(list, &error)) {
      throw AgentError("volumes." + v.name + ": extents overlap another volume's: " + error);
    }
  }
  for (const VolumeConfig& v : config_.volumes) {
    if (!v.extents.empty()) continue;
    auto allocated = allocators.at(v.pool).Allocate(v.size);
    if (!allocated) {
      throw AgentError("volumes." + v.name + ": pool " + v.pool + " has no room for " +
                       std::to_string(v.size) + " bytes");
    }
    extents[v.name] = std::move(*allocated);
  }
  std::lock_guard lock(mu_);
  for (const VolumeConfig& v : config_.volumes) {
    try {
      OpenVolumeLocked(v.name, v.pool, extents[v.name], v.read_only).from_config = true;
    } catch (const PortError& e) {
      throw AgentError("volumes." + v.name + ": " + e.what());
    }
  }
}

void Agent::BuildConfiguredPorts() {
  std::lock_guard lock(mu_);
  auto add = [&](PortRequest request, const std::string& where) {
    const VolumeState& volume = volumes_.at(request.volume_id);
    request.pool = volume.pool;
    for (const pool::Extent& e : volume.volume->extents()) {
      request.extents.push_back(PortExtent{e.backend, e.offset, e.length});
    }
    request.size_bytes = volume.volume->SizeBytes();
    try {
      std::string name = request.name;
      AddPortLocked(std::move(request));
      ports_.at(name).from_config = true;
    } catch (const PortError& e) {
      throw AgentError(where + ": " + e.what());
    }
  };
  for (const PortConfig& port : config_.ports) {
    PortRequest request;
    request.name = port.target;
    request.volume_id = port.volume;
    request.transport = AttachTransport::kIscsi;
    request.allowed_initiators =
        port.allow_any_initiator ? std::vector<std::string>{"*"} : port.initiators;
    if (port.chap) {
      request.chap_user = port.chap->user;
      request.chap_secret = port.chap->secret;
    }
    if (port.mutual_chap) {
      request.mutual_user = port.mutual_chap->user;
      request.mutual_secret = port.mutual_chap->secret;
    }
    add(std::move(request), "ports." + port.target);
  }
  for (const FuseExportConfig& fx : config_.fuse_exports) {
    PortRequest request;
    request.name = "fuse-" + fx.volume;
    request.volume_id = fx.volume;
    request.transport = AttachTransport::kFuse;
    request.owner = "config";
    fuse_dirs_[request.name] = fx.mountpoint + "/" + fx.volume;
    add(std::move(request), "fuse." + fx.volume);
  }
}

Agent::VolumeState& Agent::OpenVolumeLocked(const std::string& id, const std::string& pool_name,
                                            const std::vector<pool::Extent>& extents,
                                            bool read_only, bool cluster_volume) {
  auto pool_it = pools_.find(pool_name);
  if (pool_it == pools_.end()) {
    throw PortError(PortError::Kind::kNotFound,
                    "pool '" + pool_name + "' is not served by this agent");
  }
  pool::Pool& pool = *pool_it->second;
  if (auto it = volumes_.find(id); it != volumes_.end()) {
    VolumeState& existing = it->second;
    std::vector<pool::Extent> current = existing.volume->extents();
    if (existing.pool != pool_name) {
      throw PortError(PortError::Kind::kFailedPrecondition,
                      "volume " + id + " is open in pool " + existing.pool);
    }
    if (current == extents) return existing;
    // Growth: the open volume's extents are a prefix of the requested ones (online expansion).
    if (extents.size() > current.size() &&
        std::equal(current.begin(), current.end(), extents.begin())) {
      std::vector<pool::Extent> tail(extents.begin() + static_cast<long>(current.size()),
                                     extents.end());
      std::string error;
      if (!pool.ExtendVolume(existing.volume.get(), tail, &error)) {
        throw PortError(PortError::Kind::kInvalidArgument, error);
      }
      for (auto& [name, port] : ports_) {
        if (port.request.volume_id == id && port.device) port.device->NotifyCapacityChanged(0);
      }
      VIOS_LOG(kInfo, "volume grown")
          .Field("volume", id)
          .Field("bytes", existing.volume->SizeBytes());
      return existing;
    }
    throw PortError(PortError::Kind::kFailedPrecondition,
                    "volume " + id + " is open with a different extent map");
  }
  std::string error;
  std::shared_ptr<pool::Volume> volume = pool.OpenVolume(id, extents, &error);
  if (!volume) throw PortError(PortError::Kind::kInvalidArgument, error);
  scsi::LogicalUnitConfig lu_config;
  lu_config.volume_id = id;
  lu_config.read_only = read_only;
  // SCSI-3 persistent reservations and SPC-2 RESERVE/RELEASE (agent_cluster.cc).
  std::shared_ptr<reservation::LocalPersistentReservations> reservations =
      MakeReservationPolicy(id, cluster_volume);
  auto devices = std::make_shared<VolumeDevices>();
  reservations->SetUnitAttentionSink([devices](const reservation::PrUnitAttention& ua) {
    std::lock_guard lock(devices->mu);
    for (const auto& weak : devices->devices) {
      if (auto device = weak.lock()) {
        device->EstablishUnitAttention(ua.port.InitiatorPort(), ua.port.targetPort, 0, ua.asc);
      }
    }
  });
  // PREEMPT AND ABORT: the victim's commands on this agent end before the PR OUT (or, for a
  // peer's, before this agent's acknowledgement) completes. A victim whose I/O is held longer
  // (path lost) makes the executing agent wait out the copy's lease instead (reservation/README).
  reservations->SetAbortSink([this](const reservation::PrPort& victim) {
    targets_.AbortTasksOf(victim.targetPort, victim.InitiatorPort(), std::chrono::seconds(10));
  });
  auto lu = std::make_shared<scsi::LogicalUnit>(volume.get(), lu_config, reservations.get());
  collector_->AddIo("volume", id, &lu->counters(), lu);
  VIOS_LOG(kInfo, "volume ready")
      .Field("volume", id)
      .Field("pool", pool_name)
      .Field("bytes", volume->SizeBytes())
      .Field("extents", volume->extents().size());
  VolumeState& state = volumes_[id];
  state = VolumeState{pool_name, devices, std::move(volume), std::move(reservations), std::move(lu),
                      false,     0};
  return state;
}

std::string Agent::PortIqn(const PortRequest& request) const {
  if (request.name.starts_with("iqn.")) return request.name;  // Configured ports name their IQN.
  return config_.iqn_prefix + ":" + IqnPart(request.volume_id) + ":" + IqnPart(request.name);
}

std::string Agent::PortalAddress() const {
  if (server_) {
    auto portals = server_->Portals();
    if (!portals.empty()) return portals.front().host + ":" + std::to_string(portals.front().port);
  }
  return config_.iscsi_listen.empty() ? "" : config_.iscsi_listen.front();
}

PortInfo Agent::AddPortLocked(PortRequest request) {
  VolumeState& volume =
      OpenVolumeLocked(request.volume_id, request.pool, ToPoolExtents(request.extents),
                       request.read_only, /*cluster_volume=*/config_.cluster.has_value());
  PortState port;
  port.request = request;
  if (auto dir = fuse_dirs_.find(request.name); dir != fuse_dirs_.end()) {
    port.fuse_dir = dir->second;
  } else {
    port.fuse_dir = (config_.state_dir.empty() ? std::string("/run/vios") : config_.state_dir) +
                    "/fuse/" + request.name;
  }
  if (request.transport == AttachTransport::kIscsi) {
    port.device = std::make_shared<scsi::ScsiDevice>();
    port.device->AddLun(0, volume.lu);
    {
      std::lock_guard devices_lock(volume.devices->mu);
      std::erase_if(volume.devices->devices, [](const auto& weak) { return weak.expired(); });
      volume.devices->devices.push_back(port.device);
    }
    iscsi::TargetConfig target_config;
    target_config.iqn = PortIqn(request);
    target_config.alias = request.volume_id;
    target_config.allowed_initiators = request.allowed_initiators;
    target_config.chap = iscsi::ChapCredentials{request.chap_user, request.chap_secret,
                                                request.mutual_user, request.mutual_secret};
    port.target = std::make_shared<iscsi::Target>(target_config, port.device.get());
    if (!targets_.Add(port.target)) {
      throw PortError(PortError::Kind::kAlreadyExists, "target " + target_config.iqn + " exists");
    }
    collector_->AddPort(port.target);
  }
  ++volume.ports;
  auto [it, inserted] = ports_.emplace(request.name, std::move(port));
  if (started_ && it->second.request.transport == AttachTransport::kFuse) {
    try {
      StartFuseLocked(it->first, it->second);
    } catch (...) {
      --volume.ports;
      ports_.erase(it);
      throw;
    }
  }
  VIOS_LOG(kInfo, "virtual port created")
      .Field("port", request.name)
      .Field("volume", request.volume_id)
      .Field("transport", request.transport == AttachTransport::kFuse ? "fuse" : "iscsi")
      .Field("owner", request.owner);
  return DescribeLocked(it->first, it->second);
}

void Agent::StartFuseLocked(const std::string& name, PortState& port) {
  // mkdir -p of the export directory; an existing one is fine.
  std::string dir = port.fuse_dir;
  for (size_t slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1)) {
    ::mkdir(dir.substr(0, slash).c_str(), 0700);
  }
  ::mkdir(dir.c_str(), 0700);
  fuse::FuseExportOptions options;
  options.mountpoint = dir;
  options.read_only = port.request.read_only;
  VolumeState& volume = volumes_.at(port.request.volume_id);
  options.counters = &volume.lu->counters();  // FUSE I/O shows in the volume's metrics too.
  std::string error;
  port.fuse = fuse::FuseExport::Start(volume.volume.get(), options, &error);
  if (!port.fuse) {
    throw PortError(PortError::Kind::kInternal,
                    "FUSE export of " + port.request.volume_id + ": " + error);
  }
  VIOS_LOG(kInfo, "FUSE export mounted").Field("port", name).Field("file", port.fuse->FilePath());
}

PortInfo Agent::DescribeLocked(const std::string& name, const PortState& port) const {
  const VolumeState& volume = volumes_.at(port.request.volume_id);
  PortInfo info;
  info.name = name;
  info.volume_id = port.request.volume_id;
  info.transport = port.request.transport;
  info.size_bytes = volume.volume->SizeBytes();
  info.block_size = volume.volume->BlockSize();
  info.allowed_initiators = port.request.allowed_initiators;
  info.owner = port.request.owner;
  if (port.target) {
    info.target_iqn = port.target->iqn();
    info.portal = PortalAddress();
    info.active_sessions = static_cast<uint32_t>(
        port.target->counters().active_sessions.load(std::memory_order_relaxed));
  }
  if (port.fuse) info.fuse_path = port.fuse->FilePath();
  return info;
}

PortInfo Agent::CreatePort(const PortRequest& request) {
  std::lock_guard lock(mu_);
  if (auto it = ports_.find(request.name); it != ports_.end()) {
    if (!SameRequest(it->second.request, request)) {
      // A grown volume keeps its port: same everything but a longer extent map.
      PortRequest grown = it->second.request;
      grown.extents = request.extents;
      grown.size_bytes = request.size_bytes;
      if (!SameRequest(grown, request)) {
        throw PortError(PortError::Kind::kAlreadyExists,
                        "port " + request.name + " exists with different parameters");
      }
      OpenVolumeLocked(request.volume_id, request.pool, ToPoolExtents(request.extents),
                       request.read_only);
      it->second.request = grown;
      SavePortsLocked();
    }
    return DescribeLocked(it->first, it->second);
  }
  // A saved port still waiting for its pool is superseded by the new request.
  std::erase_if(pending_ports_, [&](const PortRequest& p) { return p.name == request.name; });
  PortInfo info = AddPortLocked(request);
  SavePortsLocked();
  return info;
}

bool Agent::DeletePort(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = ports_.find(name);
  if (it == ports_.end()) {
    size_t erased =
        std::erase_if(pending_ports_, [&](const PortRequest& p) { return p.name == name; });
    if (erased) SavePortsLocked();
    return erased > 0;
  }
  PortState& port = it->second;
  if (port.target) {
    targets_.Remove(port.target->iqn());  // Closes its sessions, waits for in-flight commands.
    collector_->Remove(port.target->iqn());
  }
  if (port.fuse) port.fuse->Stop();
  std::string volume_id = port.request.volume_id;
  ports_.erase(it);
  VolumeState& volume = volumes_.at(volume_id);
  if (--volume.ports == 0 && !volume.from_config) {
    collector_->Remove(volume_id);
    ForgetReservationPolicy(volume_id);
    volumes_.erase(volume_id);
  }
  SavePortsLocked();
  VIOS_LOG(kInfo, "virtual port deleted").Field("port", name).Field("volume", volume_id);
  return true;
}

std::vector<PortInfo> Agent::ListPorts(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  std::vector<PortInfo> out;
  for (const auto& [name, port] : ports_) {
    if (volume_id.empty() || port.request.volume_id == volume_id)
      out.push_back(DescribeLocked(name, port));
  }
  return out;
}

VolumeStats Agent::PortVolumeStats(const std::string& port_name) {
  std::lock_guard lock(mu_);
  auto it = ports_.find(port_name);
  if (it == ports_.end()) throw PortError(PortError::Kind::kNotFound, "no port " + port_name);
  const VolumeState& volume = volumes_.at(it->second.request.volume_id);
  const backend::IoCounters& c = volume.lu->counters();
  VolumeStats s;
  s.read_ops = c.reads.load();
  s.write_ops = c.writes.load();
  s.read_bytes = c.read_bytes.load();
  s.write_bytes = c.write_bytes.load();
  s.errors = c.errors.load();
  s.size_bytes = volume.volume->SizeBytes();
  return s;
}

AgentInfo Agent::Info() {
  AgentInfo info;
  info.node_name = config_.node_name;
  info.version = VIOS_VERSION;
  std::lock_guard lock(mu_);
  for (const auto& [name, pool] : pools_) {
    info.pools.push_back(name);
    for (const std::string& backend : pool->BackendNames()) {
      router::Router* router = pool->Backend(backend);
      router::Path* path = router->Paths().front();
      info.paths.push_back(PathInfo{name, backend, router::PathHealthName(path->Health()),
                                    router->Rerouting() ? "rerouting through peers" : ""});
    }
  }
  // Backends of the cluster's pools that could not be opened yet: Lost, with the reason.
  for (const auto& [key, error] : backend_errors_) {
    info.paths.push_back(PathInfo{key.first, key.second, "Lost", error});
  }
  info.virtual_ports = static_cast<uint32_t>(ports_.size());
  return info;
}

void Agent::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  iscsi::ServerConfig server_config;
  server_config.event_loops =
      config_.event_loops ? config_.event_loops : std::max(1u, std::thread::hardware_concurrency());
  server_ = std::make_unique<iscsi::Server>(server_config, &targets_);
  if (!server_->Start()) throw AgentError("cannot start the iSCSI event loops");
  for (const std::string& address : config_.iscsi_listen) {
    auto [host, port] = SplitHostPort(address, "listen.iscsi");
    std::string error;
    uint16_t bound = server_->AddPortal(host, port, 1, &error);
    if (bound == 0) throw AgentError("cannot listen on " + address + ": " + error);
    VIOS_LOG(kInfo, "iSCSI portal listening").Field("host", host).Field("port", bound);
  }
  for (auto& [name, port] : ports_) {
    if (port.request.transport == AttachTransport::kFuse) {
      try {
        StartFuseLocked(name, port);
      } catch (const PortError& e) {
        throw AgentError(e.what());
      }
    }
  }
  if (!config_.metrics_listen.empty()) {
    auto [host, port] = SplitHostPort(config_.metrics_listen, "listen.metrics");
    std::string error;
    exposer_ = metrics::Exposer::Start(host, port, &error);
    if (!exposer_)
      throw AgentError("cannot serve metrics on " + config_.metrics_listen + ": " + error);
    exposer_->Expose(registry_);
    exposer_->ExposeCollectable(collector_);
    exposer_->ExposeCollectable(router_metrics_);
    exposer_->ExposeCollectable(pr_collector_);
    VIOS_LOG(kInfo, "metrics listening").Field("port", exposer_->port());
  }
  if (!config_.api_socket.empty()) {
    api_service_ = std::make_unique<AgentService>(this);
    std::string error;
    api_server_ = AgentApiServer::Start(config_.api_socket, api_service_.get(), &error);
    if (!api_server_) throw AgentError("local API: " + error);
    VIOS_LOG(kInfo, "local API listening").Field("socket", config_.api_socket);
  }
  if (config_.cluster) JoinCluster();
  // Ports made through the API before a restart come back (those whose pool is open now; in a
  // cluster the others follow once the cluster's pools are open).
  if (!config_.state_dir.empty()) {
    std::string error;
    pending_ports_ = PortStore(config_.state_dir).Load(&error);
    if (!error.empty()) VIOS_LOG(kError, "saved virtual ports unusable").Field("error", error);
    RestorePortsLocked();
  }
  VIOS_LOG(kInfo, "agent started")
      .Field("node", config_.node_name)
      .Field("volumes", volumes_.size())
      .Field("ports", ports_.size());
}

void Agent::Stop() {
  LeaveCluster();
  if (api_server_) api_server_->Stop();  // No new API calls; outside mu_ (calls take it).
  api_server_.reset();
  std::lock_guard lock(mu_);
  if (server_) {
    server_->Stop();
    server_.reset();
  }
  for (auto& [name, port] : ports_) {
    if (port.fuse) port.fuse->Stop();
  }
  exposer_.reset();
  ports_.clear();
  for (const auto& [id, volume] : volumes_) ForgetReservationPolicy(id);
  volumes_.clear();
  {
    std::unique_lock routers_lock(routers_mu_);
    for (const auto& [key, router] : routers_) router_metrics_->RemoveRouter(key.first, key.second);
    routers_.clear();
  }
  pools_.clear();
}

std::vector<iscsi::PortalInfo> Agent::Portals() const {
  std::lock_guard lock(mu_);
  return server_ ? server_->Portals() : std::vector<iscsi::PortalInfo>{};
}

}  // namespace vios::agent
