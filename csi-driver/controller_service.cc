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

// The argument checks every RPC shares, in one place (CSI spec: INVALID_ARGUMENT for a missing
// or malformed field, ABORTED for an operation already in progress on the volume).
Status Required(const std::string& field) {
  return Err(StatusCode::INVALID_ARGUMENT, field + " is required");
}

Status Busy(const std::string& what, const std::string& id) {
  return Err(StatusCode::ABORTED, "an operation on " + what + " " + id + " is in progress");
}

Status CheckCap(const ::csi::v1::VolumeCapability& cap) {
  std::string why = CheckCapability(cap);
  return why.empty() ? Status::OK : Err(StatusCode::INVALID_ARGUMENT, why);
}

// CheckCapacityRange: bytes are not negative and required <= limit when both are set.
Status CheckCapacityRange(const ::csi::v1::CapacityRange& range) {
  const int64_t required = range.required_bytes();
  const int64_t limit = range.limit_bytes();
  if (required < 0 || limit < 0) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range bytes must not be negative");
  }
  if (limit > 0 && required > limit) {
    return Err(StatusCode::INVALID_ARGUMENT, "capacity_range.required_bytes " +
                                                 std::to_string(required) + " > limit_bytes " +
                                                 std::to_string(limit));
  }
  return Status::OK;
}

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

void ControllerService::PoolsChanged() {
  if (options_.pools_changed) options_.pools_changed();
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
  if (!rec.source_volume.empty()) {
    volume->mutable_content_source()->mutable_volume()->set_volume_id(rec.source_volume);
  }
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
  if (req.name().empty()) return Required("name");
  if (req.volume_capabilities().empty()) return Required("volume_capabilities");
  bool block = false;
  bool mount = false;
  std::vector<std::string> modes;
  std::string cap_fs;
  for (const auto& cap : req.volume_capabilities()) {
    if (Status s = CheckCap(cap); !s.ok()) return s;
    block = block || cap.has_block();
    mount = mount || cap.has_mount();
    if (cap.has_mount() && !cap.mount().fs_type().empty()) cap_fs = cap.mount().fs_type();
    std::string m = AccessModeName(cap.access_mode().mode());
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
  }
  if (block && mount) {
    return Err(StatusCode::INVALID_ARGUMENT, "a volume is either block or mount, not both");
  }
  if (Status s = CheckCapacityRange(req.capacity_range()); !s.ok()) return s;
  const int64_t required = req.capacity_range().required_bytes();
  const int64_t limit = req.capacity_range().limit_bytes();
  std::string source_id;
  if (req.has_volume_content_source()) {
    const auto& src = req.volume_content_source();
    if (!src.has_volume()) {
      return Err(StatusCode::INVALID_ARGUMENT,
                 "volume_content_source: snapshots are not supported (only volume clones)");
    }
    source_id = src.volume().volume_id();
    if (source_id.empty()) return Required("volume_content_source.volume.volume_id");
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
    return Busy("volume", id);
  }
  PoolSpec pool;
  if (Status s = GetPool(cluster, pool_name, &pool); !s.ok()) return s;
  const std::string volume_mode = block ? "Block" : "Filesystem";
  std::optional<VolumeRecord> source;
  std::optional<VolumeLock> source_lock;  // the source is neither deleted nor grown while copied
  if (!source_id.empty()) {
    source_lock.emplace(*this, source_id);
    if (source_id == id || !source_lock->acquired()) {
      return Busy("source volume", source_id);
    }
    if (Status s = CheckCloneSource(source_id, pool, volume_mode, &source); !s.ok()) return s;
  }
  uint64_t size =
      pool.RoundUp(required > 0 ? static_cast<uint64_t>(required) : options_.default_size);
  if (source && source->size > size) {
    // CSI spec CreateVolume: a clone is at least as large as its source.
    if (required > 0) {
      return Err(StatusCode::OUT_OF_RANGE,
                 "source volume " + source_id + " has " + std::to_string(source->size) +
                     " bytes, more than the requested " + std::to_string(size));
    }
    size = source->size;
  }
  if (limit > 0 && size > static_cast<uint64_t>(limit)) {
    return Err(StatusCode::OUT_OF_RANGE, "pool " + pool.name + " allocates in extents of " +
                                             std::to_string(pool.extent_size) +
                                             " bytes: " + std::to_string(size) +
                                             " exceeds limit_bytes " + std::to_string(limit));
  }

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
                      existing->volume_mode == volume_mode && existing->phase != "Releasing" &&
                      existing->source_volume == source_id;
    if (!compatible) {
      return Err(
          StatusCode::ALREADY_EXISTS,
          "volume '" + req.name() + "' exists with size " + std::to_string(existing->size) +
              ", pool " + existing->pool + ", mode " + existing->volume_mode +
              (existing->source_volume.empty() ? "" : ", cloned from " + existing->source_volume) +
              (existing->phase == "Releasing" ? " (being deleted)" : ""));
    }
    if (source && existing->phase != "Available" && existing->phase != "Attached") {
      // A clone whose copy did not finish (an error or a restart): copy again, then release it.
      if (Status s = FinishClone(pool, *source, &*existing); !s.ok()) return s;
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
  rec.source_volume = source_id;
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
  allocator_.Release(pool, id);  // the VIOSVolume holds the extents now
  if (source) {
    // Not Available until the copy is complete; on failure the CO's retry copies again and
    // DeleteVolume zeroes whatever was copied.
    if (Status s = FinishClone(pool, *source, &rec); !s.ok()) return s;
  } else {
    rec.phase = "Available";
    try {
      client_.UpdateStatus(r::kVIOSVolumes, rec.WithStatus());
    } catch (const kube::ApiError& e) {
      VIOS_LOG(kWarning, "could not set phase Available")
          .Field("volume", id)
          .Field("error", e.what());
    }
  }
  PoolsChanged();
  VIOS_LOG(kInfo, "volume created")
      .Field("volume", id)
      .Field("name", req.name())
      .Field("pool", pool.name)
      .Field("bytes", size)
      .Field("extents", static_cast<uint64_t>(rec.extents.size()));
  FillVolume(rec, resp->mutable_volume());
  return Status::OK;
}

Status ControllerService::CheckCloneSource(const std::string& source_id, const PoolSpec& pool,
                                           const std::string& volume_mode,
                                           std::optional<VolumeRecord>* source) {
  *source = GetVolume(source_id);
  if (!*source || (*source)->phase == "Releasing") {
    return Err(StatusCode::NOT_FOUND, "source volume " + source_id + " not found");
  }
  const VolumeRecord& src = **source;
  if (src.cluster != pool.cluster || src.pool != pool.name) {
    return Err(StatusCode::INVALID_ARGUMENT, "a clone is made in its source's pool: volume " +
                                                 source_id + " is in pool " + src.pool +
                                                 " of VIOSCluster " + src.cluster);
  }
  if (src.volume_mode != volume_mode) {
    return Err(StatusCode::INVALID_ARGUMENT, "source volume " + source_id + " is a " +
                                                 src.volume_mode + " volume, the clone " +
                                                 volume_mode);
  }
  if (!src.source_volume.empty() && src.phase != "Available" && src.phase != "Attached") {
    return Err(StatusCode::ABORTED, "source volume " + source_id + " is itself being cloned");
  }
  return Status::OK;
}

Status ControllerService::FinishClone(const PoolSpec& pool, const VolumeRecord& source,
                                      VolumeRecord* rec) {
  std::string error;
  if (!zeroer_.Copy(pool, source.extents, rec->extents, source.size, &error)) {
    return Err(StatusCode::INTERNAL,
               "copying volume " + source.id + " into its clone " + rec->id + ": " + error);
  }
  rec->phase = "Available";
  rec->object = client_.UpdateStatus(r::kVIOSVolumes, rec->WithStatus());
  VIOS_LOG(kInfo, "volume cloned")
      .Field("volume", rec->id)
      .Field("source", source.id)
      .Field("bytes", source.size);
  return Status::OK;
}

// --- DeleteVolume ---------------------------------------------------------------------------

Status ControllerService::DeleteVolume(grpc::ServerContext*,
                                       const ::csi::v1::DeleteVolumeRequest* request,
                                       ::csi::v1::DeleteVolumeResponse*) {
  auto call = metrics_.Begin("DeleteVolume");
  if (request->volume_id().empty()) {
    return call.Done(Required("volume_id"));
  }
  return call.Done(Guarded([&] { return DoDeleteVolume(request->volume_id()); }));
}

Status ControllerService::DoDeleteVolume(const std::string& id) {
  VolumeLock lock(*this, id);
  if (!lock.acquired()) {
    return Busy("volume", id);
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
  PoolsChanged();
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
  if (req.volume_id().empty()) return Required("volume_id");
  if (req.node_id().empty()) return Required("node_id");
  if (!req.has_volume_capability()) return Required("volume_capability");
  if (Status s = CheckCap(req.volume_capability()); !s.ok()) return s;
  VolumeLock lock(*this, req.volume_id());
  if (!lock.acquired()) {
    return Busy("volume", req.volume_id());
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
    return call.Done(Required("volume_id"));
  }
  return call.Done(Guarded([&] { return DoUnpublish(request->volume_id(), request->node_id()); }));
}

Status ControllerService::DoUnpublish(const std::string& id, const std::string& node) {
  VolumeLock lock(*this, id);
  if (!lock.acquired()) {
    return Busy("volume", id);
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
      return Required("volume_id");
    }
    if (request->volume_capabilities().empty()) return Required("volume_capabilities");
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
                    Rpc::PUBLISH_READONLY, Rpc::GET_VOLUME, Rpc::CLONE_VOLUME}) {
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
      return Required("volume_id");
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
  if (req.volume_id().empty()) return Required("volume_id");
  if (!req.has_capacity_range()) return Required("capacity_range");
  if (Status s = CheckCapacityRange(req.capacity_range()); !s.ok()) return s;
  const int64_t required = req.capacity_range().required_bytes();
  const int64_t limit = req.capacity_range().limit_bytes();
  if (req.has_volume_capability()) {
    if (Status s = CheckCap(req.volume_capability()); !s.ok()) return s;
  }
  VolumeLock lock(*this, req.volume_id());
  if (!lock.acquired()) {
    return Busy("volume", req.volume_id());
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
    PoolsChanged();
    resp->set_capacity_bytes(static_cast<int64_t>(target));
    // The node refreshes the device size (loop capacity / iSCSI rescan) and grows the filesystem.
    resp->set_node_expansion_required(true);
    return Status::OK;
  }
  return Err(StatusCode::ABORTED, "volume " + req.volume_id() + " kept changing; retry");
}

}  // namespace vios::csi
