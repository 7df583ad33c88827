// ControllerService (see controller_service.h). Method names are the CSI RPC names.
#include "csi-driver/controller_service.h"

#include <algorithm>

#include "common/log/log.h"
#include "csi-driver/capabilities.h"
#include "csi-driver/names.h"

namespace vios::csi {
namespace {

namespace r = kube::resources;
using grpc::Status;
using grpc::StatusCode;

Status Err(StatusCode code, const std::string& message) { return Status(code, message); }

// IsObjectName: only valid object names are looked up; anything else cannot exist.
bool IsObjectName(const std::string& id) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (id.empty() || id.size() > 253 || !alnum(id.front()) || !alnum(id.back())) return false;
  for (char c : id) {
    if (!alnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

bool IgnoredParameter(const std::string& key) {
  // external-provisioner passes csi.storage.k8s.io/* keys with --extra-create-metadata.
  return key.rfind("csi.storage.k8s.io/", 0) == 0;
}

}  // namespace

Status Guarded(const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const AllocationError& e) {
    return Err(e.code(), e.what());
  } catch (const kube::ApiError& e) {
    return Err(StatusCode::UNAVAILABLE, std::string("API server: ") + e.what());
  } catch (const std::exception& e) {
    return Err(StatusCode::INTERNAL, e.what());
  }
}

ControllerService::VolumeLock::VolumeLock(ControllerService& owner, std::string id)
    : owner_(owner), id_(std::move(id)) {
  std::lock_guard<std::mutex> lock(owner_.mutex_);
  acquired_ = owner_.volume_locks_.insert(id_).second;
}

ControllerService::VolumeLock::~VolumeLock() {
  if (!acquired_) return;
  std::lock_guard<std::mutex> lock(owner_.mutex_);
  owner_.volume_locks_.erase(id_);
}

ControllerService::ControllerService(kube::Client& client, ExtentZeroer& zeroer,
                                     ControllerOptions options, RpcMetrics& metrics)
    : client_(client),
      zeroer_(zeroer),
      options_(std::move(options)),
      metrics_(metrics),
      allocator_(client, options_.ns) {}

std::optional<VolumeRecord> ControllerService::GetVolume(const std::string& id) {
  if (!IsObjectName(id)) return std::nullopt;
  nlohmann::json obj;
  try {
    obj = client_.Get(r::kVIOSVolumes, options_.ns, id);
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kNotFound) return std::nullopt;
    throw;
  }
  std::string error;
  auto rec = VolumeRecord::FromObject(obj, &error);
  if (!rec) throw std::runtime_error(error);
  return rec;
}

Status ControllerService::GetPool(const std::string& cluster, const std::string& pool,
                                  PoolSpec* out) {
  if (cluster.empty()) {
    return Err(StatusCode::INVALID_ARGUMENT,
               "no VIOSCluster: set the 'cluster' parameter or --cluster");
  }
  nlohmann::json obj;
  try {
    obj = client_.Get(r::kVIOSClusters, options_.ns, cluster);
  } catch (const kube::ApiError& e) {
    if (e.kind() != kube::ErrorKind::kNotFound) throw;
    return Err(StatusCode::INVALID_ARGUMENT,
               "VIOSCluster '" + cluster + "' not found in namespace " + options_.ns);
  }
  std::string error;
  auto spec = PoolSpec::FromCluster(obj, pool, &error);
  if (!spec) return Err(StatusCode::INVALID_ARGUMENT, error);
  *out = *spec;
  return Status::OK;
}

bool ControllerService::NodeExists(const std::string& node) {
  if (!IsObjectName(node)) return false;
  try {
    client_.Get(r::kNodes, "", node);
    return true;
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kNotFound) return false;
    throw;
  }
}

void ControllerService::FillVolume(const VolumeRecord& rec, ::csi::v1::Volume* volume) const {
  volume->set_volume_id(rec.id);
  volume->set_capacity_bytes(static_cast<int64_t>(rec.size));
  auto& ctx = *volume->mutable_volume_context();
  ctx["cluster"] = rec.cluster;
  ctx["pool"] = rec.pool;
  ctx["transport"] = rec.transport;
  if (!rec.fs_type.empty()) ctx["fsType"] = rec.fs_type;
}

// --- CreateVolume ---------------------------------------------------------------------------

Status ControllerService::CreateVolume(grpc::ServerContext*,
                                       const ::csi::v1::CreateVolumeRequest* request,
                                       ::csi::v1::CreateVolumeResponse* response) {
  auto call = metrics_.Begin("CreateVolume");
  return call.Done(Guarded([&] { return DoCreateVolume(*request, response); }));
}

Status ControllerService::DoCreateVolume(const ::csi::v1::CreateVolumeRequest& req,
                                         ::csi::v1::CreateVolumeResponse* resp) {
  if (req.name().empty()) return Err(StatusCode::INVALID_ARGUMENT, "name is required");
  if (req.volume_capabilities().empty()) {
    return Err(StatusCode::INVALID_ARGUMENT, "volume_capabilities are required");
  }
  bool block = false;
  bool mount = false;
  std::vector<std::string> modes;
  std::string cap_fs;
  for (const auto& cap : req.volume_capabilities()) {
    if (std::string why = CheckCapability(cap); !why.empty()) {
      return Err(StatusCode::INVALID_ARGUMENT, why);
    }
    block = block || cap.has_block();
    mount = mount || cap.has_mount();
    if (cap.has_mount() && !cap.mount().fs_type().empty()) cap_fs = cap.mount().fs_type();
    std::string m = AccessModeName(cap.access_mode().mode());
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
  }
  if (block && mount) {
    return Err(StatusCode::INVALID_ARGUMENT, "a volume is either block or mount, not both");
  }
  const int64_t required = req.capacity_range().required_bytes();
  const int64_t limit = req.capacity_range().limit_bytes();
  if (required < 0 || limit < 0) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range bytes must not be negative");
  }
  if (limit > 0 && required > limit) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range.required_bytes " +
                                                 std::to_string(required) + " > limit_bytes " +
                                                 std::to_string(limit));
  }
  if (req.has_volume_content_source()) {
    return Err(StatusCode::INVALID_ARGUMENT,
               "volume_content_source (snapshots, clones) is not supported");
  }
  if (!req.mutable_parameters().empty()) {
    return Err(StatusCode::INVALID_ARGUMENT, "mutable_parameters are not supported");
  }
  std::string cluster = options_.default_cluster;
  std::string pool_name;
  std::string transport = "fuse";
  std::string fs_type = cap_fs;
  for (const auto& [key, value] : req.parameters()) {
    if (key == "cluster") {
      cluster = value;
    } else if (key == "pool") {
      pool_name = value;
    } else if (key == "transport") {
      transport = value;
    } else if (key == "fsType") {
      if (fs_type.empty()) fs_type = value;
    } else if (!IgnoredParameter(key)) {
      return Err(StatusCode::INVALID_ARGUMENT,
                 "unknown parameter '" + key + "' (known: cluster, pool, transport, fsType)");
    }
  }
  if (transport != "fuse" && transport != "iscsi") {
    return Err(StatusCode::INVALID_ARGUMENT,
               "parameter transport='" + transport + "': must be fuse or iscsi");
  }
  if (!fs_type.empty() && std::find(kSupportedFsTypes.begin(), kSupportedFsTypes.end(), fs_type) ==
                              kSupportedFsTypes.end()) {
    return Err(StatusCode::INVALID_ARGUMENT, "fsType '" + fs_type + "' is not supported");
  }

  const std::string id = VolumeObjectName(req.name());
  VolumeLock lock(*this, id);
  if (!lock.acquired()) {
    return Err(StatusCode::ABORTED, "an operation on volume " + id + " is in progress");
  }
  PoolSpec pool;
  if (Status s = GetPool(cluster, pool_name, &pool); !s.ok()) return s;
  const uint64_t size =
      pool.RoundUp(required > 0 ? static_cast<uint64_t>(required) : options_.default_size);
  if (limit > 0 && size > static_cast<uint64_t>(limit)) {
    return Err(StatusCode::OUT_OF_RANGE, "pool " + pool.name + " allocates in extents of " +
                                             std::to_string(pool.extent_size) +
                                             " bytes: " + std::to_string(size) +
                                             " exceeds limit_bytes " + std::to_string(limit));
  }
  const std::string volume_mode = block ? "Block" : "Filesystem";

  if (auto existing = GetVolume(id)) {
    // CSI spec CreateVolume: same name and compatible parameters -> the same volume, else
    // ALREADY_EXISTS.
    if (existing->csi_name != req.name()) {
      return Err(StatusCode::INTERNAL,
                 "volume id " + id + " already belongs to CSI volume " + existing->csi_name);
    }
    bool compatible = existing->size >= static_cast<uint64_t>(required) &&
                      (limit == 0 || existing->size <= static_cast<uint64_t>(limit)) &&
                      existing->pool == pool.name && existing->cluster == pool.cluster &&
                      existing->volume_mode == volume_mode && existing->phase != "Releasing";
    if (!compatible) {
      return Err(StatusCode::ALREADY_EXISTS,
                 "volume '" + req.name() + "' exists with size " + std::to_string(existing->size) +
                     ", pool " + existing->pool + ", mode " + existing->volume_mode +
                     (existing->phase == "Releasing" ? " (being deleted)" : ""));
    }
    FillVolume(*existing, resp->mutable_volume());
    return Status::OK;
  }

  VolumeRecord rec;
  rec.id = id;
  rec.csi_name = req.name();
  rec.cluster = pool.cluster;
  rec.pool = pool.name;
  rec.size = size;
  rec.volume_mode = volume_mode;
  rec.access_modes = modes;
  rec.transport = transport;
  rec.fs_type = fs_type;
  rec.extents = allocator_.Reserve(pool, id, {}, size);
  nlohmann::json created;
  try {
    created = client_.Create(r::kVIOSVolumes, options_.ns, rec.NewObject(options_.ns));
  } catch (const kube::ApiError& e) {
    if (e.kind() != kube::ErrorKind::kAlreadyExists) throw;
    // Another replica created it in the meantime (with the same reservation, keyed by id).
    return Err(StatusCode::ABORTED, "volume " + id + " was created concurrently; retry");
  }
  rec.object = created;
  rec.phase = "Available";
  try {
    client_.UpdateStatus(r::kVIOSVolumes, rec.WithStatus());
  } catch (const kube::ApiError& e) {
    VIOS_LOG(kWarning, "could not set phase Available")
        .Field("volume", id)
        .Field("error", e.what());
  }
  allocator_.Release(pool, id);
  VIOS_LOG(kInfo, "volume created")
      .Field("volume", id)
      .Field("name", req.name())
      .Field("pool", pool.name)
      .Field("bytes", size)
      .Field("extents", static_cast<uint64_t>(rec.extents.size()));
  FillVolume(rec, resp->mutable_volume());
  return Status::OK;
}

// --- DeleteVolume ---------------------------------------------------------------------------

Status ControllerService::DeleteVolume(grpc::ServerContext*,
                                       const ::csi::v1::DeleteVolumeRequest* request,
                                       ::csi::v1::DeleteVolumeResponse*) {
  auto call = metrics_.Begin("DeleteVolume");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  return call.Done(Guarded([&] { return DoDeleteVolume(request->volume_id()); }));
}

Status ControllerService::DoDeleteVolume(const std::string& id) {
  VolumeLock lock(*this, id);
  if (!lock.acquired()) {
    return Err(StatusCode::ABORTED, "an operation on volume " + id + " is in progress");
  }
  auto rec = GetVolume(id);
  if (!rec) return Status::OK;  // CSI spec: deleting a missing volume succeeds.
  if (rec->Published()) {
    std::string nodes;
    for (const auto& a : rec->attachments) nodes += (nodes.empty() ? "" : ", ") + a.node;
    return Err(StatusCode::FAILED_PRECONDITION, "volume " + id + " is still published to " + nodes);
  }
  // Releasing first: if zeroing fails or this process dies, the object (and so the extents'
  // ownership) stays, and the CO's retry zeroes again.
  if (rec->phase != "Releasing") {
    rec->phase = "Releasing";
    try {
      rec->object = client_.UpdateStatus(r::kVIOSVolumes, rec->WithStatus());
    } catch (const kube::ApiError& e) {
      if (e.kind() == kube::ErrorKind::kConflict) {
        return Err(StatusCode::ABORTED, "volume " + id + " changed while deleting; retry");
      }
      if (e.kind() == kube::ErrorKind::kNotFound) return Status::OK;
      throw;
    }
  }
  PoolSpec pool;
  Status pool_status = GetPool(rec->cluster, rec->pool, &pool);
  if (pool_status.ok()) {
    std::string error;
    if (!zeroer_.Zero(pool, rec->extents, &error)) {
      return Err(StatusCode::INTERNAL, "zeroing the extents of volume " + id + ": " + error);
    }
  } else {
    // Without its cluster the pool cannot hand the extents to anyone: nothing to protect.
    VIOS_LOG(kWarning, "deleting a volume whose pool is gone")
        .Field("volume", id)
        .Field("reason", pool_status.error_message());
  }
  kube::DeleteOptions opts;
  opts.precondition_uid = rec->object["metadata"].value("uid", "");
  try {
    client_.Delete(r::kVIOSVolumes, options_.ns, id, opts);
  } catch (const kube::ApiError& e) {
    if (e.kind() != kube::ErrorKind::kNotFound) throw;
  }
  VIOS_LOG(kInfo, "volume deleted").Field("volume", id).Field("bytes", rec->size);
  return Status::OK;
}

// --- ControllerPublishVolume / ControllerUnpublishVolume ------------------------------------

Status ControllerService::ControllerPublishVolume(
    grpc::ServerContext*, const ::csi::v1::ControllerPublishVolumeRequest* request,
    ::csi::v1::ControllerPublishVolumeResponse* response) {
  auto call = metrics_.Begin("ControllerPublishVolume");
  return call.Done(Guarded([&] { return DoPublish(*request, response); }));
}

Status ControllerService::DoPublish(const ::csi::v1::ControllerPublishVolumeRequest& req,
                                    ::csi::v1::ControllerPublishVolumeResponse* resp) {
  if (req.volume_id().empty()) return Err(StatusCode::INVALID_ARGUMENT, "volume_id is required");
  if (req.node_id().empty()) return Err(StatusCode::INVALID_ARGUMENT, "node_id is required");
  if (!req.has_volume_capability()) {
    return Err(StatusCode::INVALID_ARGUMENT, "volume_capability is required");
  }
  if (std::string why = CheckCapability(req.volume_capability()); !why.empty()) {
    return Err(StatusCode::INVALID_ARGUMENT, why);
  }
  VolumeLock lock(*this, req.volume_id());
  if (!lock.acquired()) {
    return Err(StatusCode::ABORTED,
               "an operation on volume " + req.volume_id() + " is in progress");
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto rec = GetVolume(req.volume_id());
    if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " not found");
    if (!NodeExists(req.node_id())) {
      return Err(StatusCode::NOT_FOUND, "node " + req.node_id() + " not found");
    }
    if (rec->phase == "Releasing") {
      return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " is being deleted");
    }
    if (VolumeModeOf(req.volume_capability()) != rec->volume_mode) {
      return Err(StatusCode::INVALID_ARGUMENT, "volume " + rec->id + " is a " + rec->volume_mode +
                                                   " volume; the capability asks for " +
                                                   VolumeModeOf(req.volume_capability()));
    }
    (*resp->mutable_publish_context())["node"] = req.node_id();
    bool single = IsSingleNode(req.volume_capability().access_mode().mode());
    for (const auto& a : rec->attachments) {
      if (a.node == req.node_id()) {
        if (a.read_only == req.readonly()) return Status::OK;  // idempotent
        return Err(StatusCode::ALREADY_EXISTS,
                   "volume " + rec->id + " is published to " + a.node +
                       " with readonly=" + (a.read_only ? "true" : "false"));
      }
      if (single) {
        return Err(
            StatusCode::FAILED_PRECONDITION,
            "volume " + rec->id + " has a single-node access mode and is published to " + a.node);
      }
    }
    Attachment at;
    at.node = req.node_id();
    at.iqn = AttachmentIqn(rec->id, req.node_id(), req.readonly());
    at.read_only = req.readonly();
    at.transport = rec->transport;
    at.attached_time = NowRfc3339();
    rec->attachments.push_back(at);
    rec->phase = "Attached";
    try {
      client_.UpdateStatus(r::kVIOSVolumes, rec->WithStatus());
      return Status::OK;
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kConflict) throw;
    }
  }
  return Err(StatusCode::ABORTED, "volume " + req.volume_id() + " kept changing; retry");
}

Status ControllerService::ControllerUnpublishVolume(
    grpc::ServerContext*, const ::csi::v1::ControllerUnpublishVolumeRequest* request,
    ::csi::v1::ControllerUnpublishVolumeResponse*) {
  auto call = metrics_.Begin("ControllerUnpublishVolume");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  return call.Done(Guarded([&] { return DoUnpublish(request->volume_id(), request->node_id()); }));
}

Status ControllerService::DoUnpublish(const std::string& id, const std::string& node) {
  VolumeLock lock(*this, id);
  if (!lock.acquired()) {
    return Err(StatusCode::ABORTED, "an operation on volume " + id + " is in progress");
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto rec = GetVolume(id);
    if (!rec) return Status::OK;  // CSI spec: a missing volume counts as unpublished.
    auto& list = rec->attachments;
    size_t before = list.size();
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const Attachment& a) { return node.empty() || a.node == node; }),
               list.end());
    if (list.size() == before) return Status::OK;
    if (list.empty() && rec->phase == "Attached") rec->phase = "Available";
    try {
      client_.UpdateStatus(r::kVIOSVolumes, rec->WithStatus());
      return Status::OK;
    } catch (const kube::ApiError& e) {
      if (e.kind() == kube::ErrorKind::kNotFound) return Status::OK;
      if (e.kind() != kube::ErrorKind::kConflict) throw;
    }
  }
  return Err(StatusCode::ABORTED, "volume " + id + " kept changing; retry");
}

// --- ValidateVolumeCapabilities, ListVolumes, GetCapacity, ControllerGetVolume --------------

Status ControllerService::ValidateVolumeCapabilities(
    grpc::ServerContext*, const ::csi::v1::ValidateVolumeCapabilitiesRequest* request,
    ::csi::v1::ValidateVolumeCapabilitiesResponse* response) {
  auto call = metrics_.Begin("ValidateVolumeCapabilities");
  return call.Done(Guarded([&]() -> Status {
    if (request->volume_id().empty()) {
      return Err(StatusCode::INVALID_ARGUMENT, "volume_id is required");
    }
    if (request->volume_capabilities().empty()) {
      return Err(StatusCode::INVALID_ARGUMENT, "volume_capabilities are required");
    }
    auto rec = GetVolume(request->volume_id());
    if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + request->volume_id() + " not found");
    for (const auto& cap : request->volume_capabilities()) {
      std::string why = CheckCapability(cap);
      if (why.empty() && VolumeModeOf(cap) != rec->volume_mode) {
        why = "volume is " + rec->volume_mode + ", capability asks for " + VolumeModeOf(cap);
      }
      if (!why.empty()) {
        response->set_message(why);
        return Status::OK;  // not confirmed
      }
    }
    auto* confirmed = response->mutable_confirmed();
    *confirmed->mutable_volume_capabilities() = request->volume_capabilities();
    *confirmed->mutable_volume_context() = request->volume_context();
    *confirmed->mutable_parameters() = request->parameters();
    return Status::OK;
  }));
}

Status ControllerService::ListVolumes(grpc::ServerContext*,
                                      const ::csi::v1::ListVolumesRequest* request,
                                      ::csi::v1::ListVolumesResponse* response) {
  auto call = metrics_.Begin("ListVolumes");
  return call.Done(Guarded([&]() -> Status {
    if (request->max_entries() < 0) {
      return Err(StatusCode::INVALID_ARGUMENT, "max_entries must not be negative");
    }
    std::string after;
    if (!request->starting_token().empty()) {
      auto parsed = ParsePageToken(request->starting_token());
      if (!parsed) {
        return Err(StatusCode::ABORTED,
                   "starting_token '" + request->starting_token() + "' is not a token we issued");
      }
      after = *parsed;
    }
    auto list = client_.ListAll(r::kVIOSVolumes, options_.ns);
    std::vector<VolumeRecord> records;
    for (const auto& obj : list.items) {
      std::string error;
      if (auto rec = VolumeRecord::FromObject(obj, &error)) records.push_back(std::move(*rec));
    }
    std::sort(records.begin(), records.end(),
              [](const VolumeRecord& a, const VolumeRecord& b) { return a.id < b.id; });
    int added = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& rec = records[i];
      if (!after.empty() && rec.id <= after) continue;  // pages continue after the last id seen
      if (request->max_entries() > 0 && added == request->max_entries()) {
        response->set_next_token(MakePageToken(records[i - 1].id));
        break;
      }
      auto* entry = response->add_entries();
      FillVolume(rec, entry->mutable_volume());
      for (const auto& a : rec.attachments) entry->mutable_status()->add_published_node_ids(a.node);
      ++added;
    }
    return Status::OK;
  }));
}

Status ControllerService::GetCapacity(grpc::ServerContext*,
                                      const ::csi::v1::GetCapacityRequest* request,
                                      ::csi::v1::GetCapacityResponse* response) {
  auto call = metrics_.Begin("GetCapacity");
  return call.Done(Guarded([&]() -> Status {
    for (const auto& cap : request->volume_capabilities()) {
      if (!CheckCapability(cap).empty()) {
        response->set_available_capacity(0);  // CSI spec: unsupported capabilities -> 0
        return Status::OK;
      }
    }
    std::string cluster = options_.default_cluster;
    std::string pool_name;
    for (const auto& [key, value] : request->parameters()) {
      if (key == "cluster") cluster = value;
      if (key == "pool") pool_name = value;
    }
    if (cluster.empty()) {
      return Err(StatusCode::INVALID_ARGUMENT,
                 "no VIOSCluster: set the 'cluster' parameter or --cluster");
    }
    nlohmann::json obj;
    try {
      obj = client_.Get(r::kVIOSClusters, options_.ns, cluster);
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kNotFound) throw;
      response->set_available_capacity(0);
      return Status::OK;
    }
    uint64_t free = 0;
    uint64_t extent = 0;
    for (const auto& pool : PoolSpec::AllFromCluster(obj)) {
      if (!pool_name.empty() && pool.name != pool_name) continue;
      free += allocator_.FreeBytes(pool);
      extent = extent == 0 ? pool.extent_size : std::min(extent, pool.extent_size);
    }
    response->set_available_capacity(static_cast<int64_t>(free));
    response->mutable_maximum_volume_size()->set_value(static_cast<int64_t>(free));
    if (extent > 0)
      response->mutable_minimum_volume_size()->set_value(static_cast<int64_t>(extent));
    return Status::OK;
  }));
}

Status ControllerService::ControllerGetCapabilities(
    grpc::ServerContext*, const ::csi::v1::ControllerGetCapabilitiesRequest*,
    ::csi::v1::ControllerGetCapabilitiesResponse* response) {
  auto call = metrics_.Begin("ControllerGetCapabilities");
  using Rpc = ::csi::v1::ControllerServiceCapability::RPC;
  for (auto type : {Rpc::CREATE_DELETE_VOLUME, Rpc::PUBLISH_UNPUBLISH_VOLUME, Rpc::LIST_VOLUMES,
                    Rpc::GET_CAPACITY, Rpc::EXPAND_VOLUME, Rpc::LIST_VOLUMES_PUBLISHED_NODES,
                    Rpc::PUBLISH_READONLY, Rpc::GET_VOLUME}) {
    response->add_capabilities()->mutable_rpc()->set_type(type);
  }
  return call.Done(Status::OK);
}

Status ControllerService::ControllerGetVolume(grpc::ServerContext*,
                                              const ::csi::v1::ControllerGetVolumeRequest* request,
                                              ::csi::v1::ControllerGetVolumeResponse* response) {
  auto call = metrics_.Begin("ControllerGetVolume");
  return call.Done(Guarded([&]() -> Status {
    if (request->volume_id().empty()) {
      return Err(StatusCode::INVALID_ARGUMENT, "volume_id is required");
    }
    auto rec = GetVolume(request->volume_id());
    if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + request->volume_id() + " not found");
    FillVolume(*rec, response->mutable_volume());
    for (const auto& a : rec->attachments) {
      response->mutable_status()->add_published_node_ids(a.node);
    }
    return Status::OK;
  }));
}

// --- ControllerExpandVolume -----------------------------------------------------------------

Status ControllerService::ControllerExpandVolume(
    grpc::ServerContext*, const ::csi::v1::ControllerExpandVolumeRequest* request,
    ::csi::v1::ControllerExpandVolumeResponse* response) {
  auto call = metrics_.Begin("ControllerExpandVolume");
  return call.Done(Guarded([&] { return DoExpand(*request, response); }));
}

Status ControllerService::DoExpand(const ::csi::v1::ControllerExpandVolumeRequest& req,
                                   ::csi::v1::ControllerExpandVolumeResponse* resp) {
  if (req.volume_id().empty()) return Err(StatusCode::INVALID_ARGUMENT, "volume_id is required");
  if (!req.has_capacity_range()) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range is required");
  }
  const int64_t required = req.capacity_range().required_bytes();
  const int64_t limit = req.capacity_range().limit_bytes();
  if (required < 0 || limit < 0 || (limit > 0 && required > limit)) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range is malformed");
  }
  if (req.has_volume_capability()) {
    if (std::string why = CheckCapability(req.volume_capability()); !why.empty()) {
      return Err(StatusCode::INVALID_ARGUMENT, why);
    }
  }
  VolumeLock lock(*this, req.volume_id());
  if (!lock.acquired()) {
    return Err(StatusCode::ABORTED,
               "an operation on volume " + req.volume_id() + " is in progress");
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto rec = GetVolume(req.volume_id());
    if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " not found");
    if (rec->phase == "Releasing") {
      return Err(StatusCode::FAILED_PRECONDITION, "volume " + rec->id + " is being deleted");
    }
    PoolSpec pool;
    if (Status s = GetPool(rec->cluster, rec->pool, &pool); !s.ok()) {
      return Err(StatusCode::INTERNAL, s.error_message());
    }
    const uint64_t target = pool.RoundUp(static_cast<uint64_t>(required));
    if (limit > 0 && target > static_cast<uint64_t>(limit)) {
      return Err(StatusCode::OUT_OF_RANGE,
                 "size " + std::to_string(target) + " (whole extents) exceeds limit_bytes");
    }
    if (target <= rec->size) {
      resp->set_capacity_bytes(static_cast<int64_t>(rec->size));
      resp->set_node_expansion_required(false);
      return Status::OK;
    }
    rec->extents = allocator_.Reserve(pool, rec->id, rec->extents, target);
    rec->size = target;
    try {
      client_.Update(r::kVIOSVolumes, rec->WithSpec());
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kConflict) throw;
      continue;  // the reservation stays ours (keyed by volume id) and is found again
    }
    allocator_.Release(pool, rec->id);
    resp->set_capacity_bytes(static_cast<int64_t>(target));
    // The node refreshes the device size (loop capacity / iSCSI rescan) and grows the filesystem.
    resp->set_node_expansion_required(true);
    return Status::OK;
  }
  return Err(StatusCode::ABORTED, "volume " + req.volume_id() + " kept changing; retry");
}

}  // namespace vios::csi
