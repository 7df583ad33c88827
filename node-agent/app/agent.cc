#include "node-agent/app/agent.h"

#include <sys/stat.h>

#include <thread>

#include "common/log/log.h"
#include "node-agent/backend/file_backend.h"
#include "node-agent/backend/iscsi_backend.h"
#include "node-agent/pool/extent_allocator.h"
#include "node-agent/router/router.h"
#include "node-agent/scsi/spc2_reservation.h"

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

}  // namespace

std::unique_ptr<Agent> Agent::Create(const AgentConfig& config) {
  std::unique_ptr<Agent> agent(new Agent(config));
  agent->OpenBackends();
  agent->BuildVolumes();
  agent->BuildPorts();
  return agent;
}

Agent::Agent(AgentConfig config) : config_(std::move(config)) {}

Agent::~Agent() { Stop(); }

void Agent::OpenBackends() {
  for (const PoolConfig& pool_config : config_.pools) {
    auto pool = std::make_unique<pool::Pool>(pool_config.name, pool_config.extent_size);
    for (const BackendConfig& b : pool_config.backends) {
      std::unique_ptr<backend::BlockDevice> device;
      std::string error;
      if (b.file || b.device) {
        backend::FileBackendOptions options;
        options.path = b.file ? b.file->path : b.device->path;
        options.size_bytes = b.file ? b.file->size : 0;
        options.create = b.file && b.file->create;
        device = backend::FileBackend::Open(options, &error);
      } else {
        device = OpenIscsiBackend(*b.iscsi, config_.node_name, &error);
      }
      std::string where = "pools." + pool_config.name + ".backends." + b.name;
      if (!device) throw AgentError(where + ": " + error);
      VIOS_LOG(kInfo, "backend open")
          .Field("pool", pool_config.name)
          .Field("backend", b.name)
          .Field("device", device->Describe())
          .Field("bytes", device->SizeBytes());
      if (!pool->AddBackend(b.name, std::move(device), &error))
        throw AgentError(where + ": " + error);
      router::Router* router = pool->Backend(b.name);
      collector_->AddIo("backend", b.name, &router->Paths().front()->counters(), nullptr);
    }
    pools_[pool_config.name] = std::move(pool);
  }
}

void Agent::BuildVolumes() {
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
  for (const VolumeConfig& v : config_.volumes) {
    std::string error;
    std::shared_ptr<pool::Volume> volume =
        pools_.at(v.pool)->OpenVolume(v.name, extents[v.name], &error);
    if (!volume) throw AgentError("volumes." + v.name + ": " + error);
    scsi::LogicalUnitConfig lu_config;
    lu_config.volume_id = v.name;
    lu_config.read_only = v.read_only;
    auto reservations = std::make_shared<scsi::Spc2Reservations>();
    auto lu = std::make_shared<scsi::LogicalUnit>(volume.get(), lu_config, reservations.get());
    collector_->AddIo("volume", v.name, &lu->counters(), lu);
    VIOS_LOG(kInfo, "volume ready")
        .Field("volume", v.name)
        .Field("pool", v.pool)
        .Field("bytes", volume->SizeBytes())
        .Field("extents", volume->extents().size());
    volumes_[v.name] = VolumeState{std::move(volume), std::move(reservations), std::move(lu)};
  }
}

void Agent::BuildPorts() {
  for (const PortConfig& port : config_.ports) {
    const VolumeState& volume = volumes_.at(port.volume);
    auto device = std::make_shared<scsi::ScsiDevice>();
    device->AddLun(0, volume.lu);
    iscsi::TargetConfig target_config;
    target_config.iqn = port.target;
    target_config.alias = port.volume;
    if (port.allow_any_initiator) {
      target_config.allowed_initiators = {"*"};
    } else {
      target_config.allowed_initiators = port.initiators;
    }
    if (port.chap) {
      target_config.chap.user = port.chap->user;
      target_config.chap.secret = port.chap->secret;
    }
    if (port.mutual_chap) {
      target_config.chap.mutual_user = port.mutual_chap->user;
      target_config.chap.mutual_secret = port.mutual_chap->secret;
    }
    auto target = std::make_shared<iscsi::Target>(target_config, device.get());
    if (!targets_.Add(target)) throw AgentError("port " + port.target + " is declared twice");
    collector_->AddPort(target);
    ports_[port.target] = PortState{device, target};
  }
}

void Agent::Start() {
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

  for (const FuseExportConfig& fx : config_.fuse_exports) {
    std::string dir = fx.mountpoint + "/" + fx.volume;
    ::mkdir(fx.mountpoint.c_str(), 0755);
    ::mkdir(dir.c_str(), 0755);
    fuse::FuseExportOptions options;
    options.mountpoint = dir;
    options.read_only = config_.FindVolume(fx.volume)->read_only;
    std::string error;
    auto exported = fuse::FuseExport::Start(volumes_.at(fx.volume).volume.get(), options, &error);
    if (!exported) throw AgentError("FUSE export of volume " + fx.volume + ": " + error);
    VIOS_LOG(kInfo, "FUSE export mounted")
        .Field("volume", fx.volume)
        .Field("file", exported->FilePath());
    fuse_exports_.push_back(std::move(exported));
  }

  if (!config_.metrics_listen.empty()) {
    auto [host, port] = SplitHostPort(config_.metrics_listen, "listen.metrics");
    std::string error;
    exposer_ = metrics::Exposer::Start(host, port, &error);
    if (!exposer_)
      throw AgentError("cannot serve metrics on " + config_.metrics_listen + ": " + error);
    exposer_->Expose(registry_);
    exposer_->ExposeCollectable(collector_);
    VIOS_LOG(kInfo, "metrics listening").Field("port", exposer_->port());
  }
  VIOS_LOG(kInfo, "agent started")
      .Field("node", config_.node_name)
      .Field("volumes", volumes_.size())
      .Field("ports", ports_.size());
}

void Agent::Stop() {
  if (server_) {
    server_->Stop();
    server_.reset();
  }
  for (auto& fx : fuse_exports_) fx->Stop();
  fuse_exports_.clear();
  exposer_.reset();
  ports_.clear();
  volumes_.clear();
  pools_.clear();
}

std::vector<iscsi::PortalInfo> Agent::Portals() const {
  return server_ ? server_->Portals() : std::vector<iscsi::PortalInfo>{};
}

}  // namespace vios::agent
