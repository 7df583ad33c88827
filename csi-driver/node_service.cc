// NodeService (see node_service.h). Method names are the CSI RPC names.
#include "csi-driver/node_service.h"

#include <sys/statvfs.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/log/log.h"
#include "csi-driver/capabilities.h"
#include "csi-driver/controller_service.h"
#include "csi-driver/mounter.h"
#include "csi-driver/names.h"

namespace vios::csi {
namespace {

namespace fs = std::filesystem;
namespace r = kube::resources;
namespace agentpb = vios::agent::v1;
using grpc::Status;
using grpc::StatusCode;

Status Err(StatusCode code, const std::string& message) { return Status(code, message); }

std::unique_ptr<grpc::ClientContext> AgentContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

Status FromAgent(const Status& s, const std::string& what) {
  return Status(s.error_code(), "agent " + what + ": " + s.error_message());
}

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& flags) {
  std::string out;
  for (const auto& f : flags) out += (out.empty() ? "" : ",") + f;
  return out;
}

bool ReaderOnly(const ::csi::v1::VolumeCapability& cap) {
  auto m = cap.access_mode().mode();
  return m == ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY ||
         m == ::csi::v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY;
}

}  // namespace

// --- state files ----------------------------------------------------------------------------

nlohmann::json NodeService::StagedVolume::ToJson() const {
  return {{"volumeId", volume_id},
          {"stagingPath", staging_path},
          {"port", port},
          {"transport", transport},
          {"fusePath", fuse_path},
          {"device", device},
          {"block", block},
          {"fsType", fs_type},
          {"iscsi",
           {{"iface", iscsi.iface},
            {"initiator", iscsi.initiator_name},
            {"target", iscsi.target_iqn},
            {"portal", iscsi.portal},
            {"lun", iscsi.lun}}}};
}

NodeService::StagedVolume NodeService::StagedVolume::FromJson(const nlohmann::json& j) {
  StagedVolume s;
  s.volume_id = j.value("volumeId", "");
  s.staging_path = j.value("stagingPath", "");
  s.port = j.value("port", "");
  s.transport = j.value("transport", "");
  s.fuse_path = j.value("fusePath", "");
  s.device = j.value("device", "");
  s.block = j.value("block", false);
  s.fs_type = j.value("fsType", "");
  auto i = j.value("iscsi", nlohmann::json::object());
  s.iscsi.iface = i.value("iface", "");
  s.iscsi.initiator_name = i.value("initiator", "");
  s.iscsi.target_iqn = i.value("target", "");
  s.iscsi.portal = i.value("portal", "");
  s.iscsi.lun = i.value("lun", 0u);
  return s;
}

std::string NodeService::StatePath(const std::string& id) const {
  // Volume ids come from the CO: keep only a safe file name (plus a hash against collisions).
  return options_.state_dir + "/" + DnsLabel(id, 80) + "-" + std::to_string(Fnv1a64(id)) + ".json";
}

std::optional<NodeService::StagedVolume> NodeService::LoadState(const std::string& id) const {
  std::ifstream in(StatePath(id));
  if (!in) return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return StagedVolume::FromJson(j);
}

bool NodeService::SaveState(const StagedVolume& s, std::string* error) const {
  std::error_code ec;
  fs::create_directories(options_.state_dir, ec);
  std::string path = StatePath(s.volume_id);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << s.ToJson().dump(2);
    if (!out) {
      *error = "writing " + tmp;
      return false;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    *error = "renaming " + tmp + ": " + ec.message();
    return false;
  }
  return true;
}

void NodeService::RemoveState(const std::string& id) const {
  std::error_code ec;
  fs::remove(StatePath(id), ec);
}

bool NodeService::TryLock(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  return busy_.insert(id).second;
}

void NodeService::Unlock(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  busy_.erase(id);
}

// --- construction, helpers ------------------------------------------------------------------

NodeService::NodeService(kube::Client& client, NodeOptions options, RpcMetrics& metrics)
    : client_(client),
      options_(std::move(options)),
      metrics_(metrics),
      iscsi_(options_.by_path_dir) {
  agent_ = agentpb::Agent::NewStub(
      grpc::CreateChannel("unix:" + options_.agent_socket, grpc::InsecureChannelCredentials()));
}

Status NodeService::AgentReady() {
  agentpb::AgentInfoRequest req;
  agentpb::AgentInfoResponse resp;
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  Status s = agent_->AgentInfo(ctx.get(), req, &resp);
  if (!s.ok()) return FromAgent(s, "at " + options_.agent_socket + " AgentInfo");
  return Status::OK;
}

std::optional<VolumeRecord> NodeService::GetVolume(const std::string& id) {
  nlohmann::json obj;
  try {
    obj = client_.Get(r::kVIOSVolumes, options_.ns, id);
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kNotFound || e.kind() == kube::ErrorKind::kBadRequest ||
        e.kind() == kube::ErrorKind::kInvalid) {
      return std::nullopt;
    }
    throw;
  }
  std::string error;
  auto rec = VolumeRecord::FromObject(obj, &error);
  if (!rec) throw std::runtime_error(error);
  return rec;
}

Status NodeService::CreatePort(const VolumeRecord& rec, const std::string& transport,
                               const google::protobuf::Map<std::string, std::string>& secrets,
                               StagedVolume* staged, agentpb::VirtualPort* port) {
  agentpb::CreateVirtualPortRequest req;
  req.set_name(staged->port);
  req.set_volume_id(rec.id);
  req.set_volume_name(rec.csi_name);
  req.set_size_bytes(rec.ExtentBytes());
  req.set_pool(rec.pool);
  for (const auto& e : rec.extents) {
    auto* x = req.add_extents();
    x->set_backend(e.backend);
    x->set_offset(e.offset);
    x->set_length(e.length);
  }
  req.mutable_identity()->set_node_name(options_.node_id);
  if (transport == "iscsi") {
    req.set_transport(agentpb::ATTACH_TRANSPORT_ISCSI);
    staged->iscsi.iface = "vios-" + DnsLabel(staged->port, 40) + "-" +
                          std::to_string(Fnv1a64(staged->port) % 1000000);
    staged->iscsi.initiator_name = InitiatorName(options_.node_id, staged->port);
    req.add_allowed_initiators(staged->iscsi.initiator_name);
    auto get = [&](const char* key) {
      auto it = secrets.find(key);
      return it == secrets.end() ? std::string() : it->second;
    };
    staged->iscsi.chap_user = get("username");
    staged->iscsi.chap_secret = get("password");
    staged->iscsi.mutual_user = get("usernameIn");
    staged->iscsi.mutual_secret = get("passwordIn");
    req.mutable_chap()->set_user(staged->iscsi.chap_user);
    req.mutable_chap()->set_secret(staged->iscsi.chap_secret);
    req.mutable_chap()->set_mutual_user(staged->iscsi.mutual_user);
    req.mutable_chap()->set_mutual_secret(staged->iscsi.mutual_secret);
  } else {
    req.set_transport(agentpb::ATTACH_TRANSPORT_FUSE);
  }
  agentpb::CreateVirtualPortResponse resp;
  auto ctx = AgentContext();
  Status s = agent_->CreateVirtualPort(ctx.get(), req, &resp);
  if (!s.ok()) return FromAgent(s, "CreateVirtualPort " + staged->port);
  *port = resp.port();
  return Status::OK;
}

// --- NodeStageVolume / NodeUnstageVolume ----------------------------------------------------

Status NodeService::NodeStageVolume(grpc::ServerContext*,
                                    const ::csi::v1::NodeStageVolumeRequest* request,
                                    ::csi::v1::NodeStageVolumeResponse*) {
  auto call = metrics_.Begin("NodeStageVolume");
  const auto& req = *request;
  if (req.volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (req.staging_target_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "staging_target_path is required"));
  }
  if (!req.has_volume_capability()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_capability is required"));
  }
  if (std::string why = CheckCapability(req.volume_capability()); !why.empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, why));
  }
  if (!TryLock(req.volume_id())) {
    return call.Done(
        Err(StatusCode::ABORTED, "an operation on volume " + req.volume_id() + " is in progress"));
  }
  Status s = Guarded([&] { return DoStage(req); });
  Unlock(req.volume_id());
  return call.Done(s);
}

Status NodeService::DoStage(const ::csi::v1::NodeStageVolumeRequest& req) {
  const std::string& id = req.volume_id();
  const std::string& staging = req.staging_target_path();
  const bool block = req.volume_capability().has_block();
  auto existing = LoadState(id);
  if (existing && existing->staging_path != staging) {
    return Err(StatusCode::ALREADY_EXISTS,
               "volume " + id + " is staged at " + existing->staging_path);
  }
  auto rec = GetVolume(id);
  if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + id + " not found");
  if ((rec->volume_mode == "Block") != block) {
    return Err(StatusCode::INVALID_ARGUMENT,
               "volume " + id + " is a " + rec->volume_mode + " volume");
  }
  std::string transport = rec->transport;
  if (auto it = req.volume_context().find("transport"); it != req.volume_context().end()) {
    transport = it->second;
  }
  if (transport != "fuse" && transport != "iscsi") {
    return Err(StatusCode::INVALID_ARGUMENT, "transport '" + transport + "' is not fuse or iscsi");
  }
  if (transport == "iscsi") {
    for (const char* key : {"username", "password"}) {
      if (req.secrets().find(key) == req.secrets().end()) {
        return Err(
            StatusCode::INVALID_ARGUMENT,
            std::string("iscsi transport needs CHAP node-stage secrets: '") + key + "' is missing");
      }
    }
  }

  StagedVolume st = existing ? *existing : StagedVolume{};
  st.volume_id = id;
  st.staging_path = staging;
  st.port = PortName(id, options_.node_id);
  st.transport = transport;
  st.block = block;
  std::string error;
  if (st.device.empty() || !fs::exists(st.device)) {
    agentpb::VirtualPort port;
    if (Status s = CreatePort(*rec, transport, req.secrets(), &st, &port); !s.ok()) return s;
    // From here on Unstage can undo what exists, even if the steps below fail.
    if (!SaveState(st, &error)) return Err(StatusCode::INTERNAL, error);
    if (transport == "fuse") {
      if (port.fuse_path().empty()) {
        return Err(StatusCode::INTERNAL, "agent returned no fuse_path for port " + st.port);
      }
      st.fuse_path = port.fuse_path();
      st.device = LoopAttach(st.fuse_path, &error);
    } else {
      st.iscsi.target_iqn = port.target_iqn();
      st.iscsi.portal = port.portal();
      st.iscsi.lun = port.lun();
      st.device = iscsi_.Attach(st.iscsi, &error);
    }
    if (st.device.empty()) {
      SaveState(st, &error);
      return Err(StatusCode::INTERNAL, "attaching volume " + id + ": " + error);
    }
    if (!SaveState(st, &error)) return Err(StatusCode::INTERNAL, error);
  }
  if (block) return Status::OK;  // NodePublishVolume binds the device itself.

  std::string fs_type = req.volume_capability().mount().fs_type();
  if (fs_type.empty()) {
    auto it = req.volume_context().find("fsType");
    fs_type = it != req.volume_context().end() ? it->second : rec->fs_type;
  }
  if (fs_type.empty()) fs_type = "ext4";
  st.fs_type = fs_type;
  if (!FormatIfBlank(st.device, fs_type, &error)) {
    return Err(StatusCode::INTERNAL, "formatting volume " + id + ": " + error);
  }
  if (!Mount(st.device, staging, fs_type, Join(req.volume_capability().mount().mount_flags()),
             &error)) {
    return Err(StatusCode::INTERNAL, "mounting volume " + id + ": " + error);
  }
  if (!SaveState(st, &error)) return Err(StatusCode::INTERNAL, error);
  VIOS_LOG(kInfo, "volume staged")
      .Field("volume", id)
      .Field("device", st.device)
      .Field("transport", transport);
  return Status::OK;
}

Status NodeService::NodeUnstageVolume(grpc::ServerContext*,
                                      const ::csi::v1::NodeUnstageVolumeRequest* request,
                                      ::csi::v1::NodeUnstageVolumeResponse*) {
  auto call = metrics_.Begin("NodeUnstageVolume");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (request->staging_target_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "staging_target_path is required"));
  }
  if (!TryLock(request->volume_id())) {
    return call.Done(Err(StatusCode::ABORTED,
                         "an operation on volume " + request->volume_id() + " is in progress"));
  }
  Status s =
      Guarded([&] { return DoUnstage(request->volume_id(), request->staging_target_path()); });
  Unlock(request->volume_id());
  return call.Done(s);
}

Status NodeService::DoUnstage(const std::string& id, const std::string& staging) {
  std::string error;
  if (!Unmount(staging, &error)) return Err(StatusCode::INTERNAL, error);
  auto st = LoadState(id);
  if (!st) return Status::OK;  // never staged here, or already unstaged
  if (st->transport == "iscsi") {
    if (!st->iscsi.target_iqn.empty() && !iscsi_.Detach(st->iscsi, &error)) {
      return Err(StatusCode::INTERNAL, "logging out of " + st->iscsi.target_iqn + ": " + error);
    }
  } else {
    if (!LoopDetach(st->device, &error)) return Err(StatusCode::INTERNAL, error);
    // A loop device attached but not yet recorded (a crash in between) is found by its file.
    if (!st->fuse_path.empty()) {
      std::string other = LoopDeviceFor(st->fuse_path);
      if (!other.empty() && !LoopDetach(other, &error)) return Err(StatusCode::INTERNAL, error);
    }
  }
  agentpb::DeleteVirtualPortRequest req;
  req.set_name(st->port);
  agentpb::DeleteVirtualPortResponse resp;
  auto ctx = AgentContext();
  Status s = agent_->DeleteVirtualPort(ctx.get(), req, &resp);
  if (!s.ok()) return FromAgent(s, "DeleteVirtualPort " + st->port);
  RemoveState(id);
  VIOS_LOG(kInfo, "volume unstaged").Field("volume", id).Field("port", st->port);
  return Status::OK;
}

// --- NodePublishVolume / NodeUnpublishVolume ------------------------------------------------

Status NodeService::NodePublishVolume(grpc::ServerContext*,
                                      const ::csi::v1::NodePublishVolumeRequest* request,
                                      ::csi::v1::NodePublishVolumeResponse*) {
  auto call = metrics_.Begin("NodePublishVolume");
  const auto& req = *request;
  if (req.volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (req.target_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "target_path is required"));
  }
  if (!req.has_volume_capability()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_capability is required"));
  }
  if (req.staging_target_path().empty()) {
    // We advertise STAGE_UNSTAGE_VOLUME, so the CO must pass it (CSI spec NodePublishVolume).
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "staging_target_path is required"));
  }
  if (std::string why = CheckCapability(req.volume_capability()); !why.empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, why));
  }
  if (!TryLock(req.volume_id())) {
    return call.Done(
        Err(StatusCode::ABORTED, "an operation on volume " + req.volume_id() + " is in progress"));
  }
  Status s = Guarded([&] { return DoPublish(req); });
  Unlock(req.volume_id());
  return call.Done(s);
}

Status NodeService::DoPublish(const ::csi::v1::NodePublishVolumeRequest& req) {
  auto st = LoadState(req.volume_id());
  if (!st) {
    if (!GetVolume(req.volume_id())) {
      return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " not found");
    }
    return Err(StatusCode::FAILED_PRECONDITION,
               "volume " + req.volume_id() + " is not staged on this node");
  }
  const std::string& target = req.target_path();
  const bool read_only = req.readonly() || ReaderOnly(req.volume_capability());
  std::string error;
  std::error_code ec;
  if (req.volume_capability().has_block()) {
    if (!st->block) {
      return Err(StatusCode::INVALID_ARGUMENT, "volume was staged for mount access, not block");
    }
    // A block volume is published as a device file: the target is a file, not a directory.
    if (fs::is_directory(target, ec) && !IsMountPoint(target)) fs::remove(target, ec);
    fs::create_directories(fs::path(target).parent_path(), ec);
    if (!fs::exists(target, ec)) std::ofstream(target).close();
    if (!BindMount(st->device, target, read_only, &error)) {
      return Err(StatusCode::INTERNAL, "publishing " + req.volume_id() + ": " + error);
    }
    return Status::OK;
  }
  if (st->block) {
    return Err(StatusCode::INVALID_ARGUMENT, "volume was staged for block access, not mount");
  }
  if (!IsMountPoint(req.staging_target_path())) {
    return Err(StatusCode::FAILED_PRECONDITION,
               "staging path " + req.staging_target_path() + " is not mounted");
  }
  fs::create_directories(target, ec);
  if (!BindMount(req.staging_target_path(), target, read_only, &error)) {
    return Err(StatusCode::INTERNAL, "publishing " + req.volume_id() + ": " + error);
  }
  return Status::OK;
}

Status NodeService::NodeUnpublishVolume(grpc::ServerContext*,
                                        const ::csi::v1::NodeUnpublishVolumeRequest* request,
                                        ::csi::v1::NodeUnpublishVolumeResponse*) {
  auto call = metrics_.Begin("NodeUnpublishVolume");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (request->target_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "target_path is required"));
  }
  if (!TryLock(request->volume_id())) {
    return call.Done(Err(StatusCode::ABORTED,
                         "an operation on volume " + request->volume_id() + " is in progress"));
  }
  Status s = Guarded([&]() -> Status {
    std::string error;
    if (!Unmount(request->target_path(), &error)) return Err(StatusCode::INTERNAL, error);
    // CSI spec: the SP deletes the file or directory it created at target_path.
    std::error_code ec;
    fs::remove(request->target_path(), ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return Err(StatusCode::INTERNAL, "removing " + request->target_path() + ": " + ec.message());
    }
    return Status::OK;
  });
  Unlock(request->volume_id());
  return call.Done(s);
}

// --- NodeGetVolumeStats / NodeExpandVolume --------------------------------------------------

Status NodeService::NodeGetVolumeStats(grpc::ServerContext*,
                                       const ::csi::v1::NodeGetVolumeStatsRequest* request,
                                       ::csi::v1::NodeGetVolumeStatsResponse* response) {
  auto call = metrics_.Begin("NodeGetVolumeStats");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (request->volume_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_path is required"));
  }
  return call.Done(Guarded([&] { return DoStats(*request, response); }));
}

Status NodeService::DoStats(const ::csi::v1::NodeGetVolumeStatsRequest& req,
                            ::csi::v1::NodeGetVolumeStatsResponse* resp) {
  auto st = LoadState(req.volume_id());
  if (!st) return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " is not staged here");
  const std::string& path = req.volume_path();
  if (!fs::exists(path) || !IsMountPoint(path)) {
    return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " is not mounted at " + path);
  }
  bool abnormal = false;
  std::string message = "volume is healthy";
  if (!fs::exists(st->device)) {
    abnormal = true;
    message = "device " + st->device + " is gone";
  } else {
    agentpb::GetVolumeStatsRequest sreq;
    sreq.set_port_name(st->port);
    agentpb::GetVolumeStatsResponse sresp;
    auto ctx = AgentContext();
    Status s = agent_->GetVolumeStats(ctx.get(), sreq, &sresp);
    if (!s.ok()) {
      abnormal = true;
      message = "agent: " + s.error_message();
    } else if (sresp.errors() > 0) {
      abnormal = true;
      message = std::to_string(sresp.errors()) + " I/O errors on the volume";
    }
  }
  resp->mutable_volume_condition()->set_abnormal(abnormal);
  resp->mutable_volume_condition()->set_message(message);
  if (st->block) {
    auto* u = resp->add_usage();
    u->set_unit(::csi::v1::VolumeUsage::BYTES);
    u->set_total(static_cast<int64_t>(DeviceSizeBytes(st->device)));
    return Status::OK;
  }
  struct statvfs sv {};
  if (::statvfs(path.c_str(), &sv) != 0) {
    return Err(StatusCode::INTERNAL, "statvfs " + path + ": " + std::strerror(errno));
  }
  auto* bytes = resp->add_usage();
  bytes->set_unit(::csi::v1::VolumeUsage::BYTES);
  bytes->set_total(static_cast<int64_t>(sv.f_blocks * sv.f_frsize));
  bytes->set_available(static_cast<int64_t>(sv.f_bavail * sv.f_frsize));
  bytes->set_used(static_cast<int64_t>((sv.f_blocks - sv.f_bfree) * sv.f_frsize));
  auto* inodes = resp->add_usage();
  inodes->set_unit(::csi::v1::VolumeUsage::INODES);
  inodes->set_total(static_cast<int64_t>(sv.f_files));
  inodes->set_available(static_cast<int64_t>(sv.f_favail));
  inodes->set_used(static_cast<int64_t>(sv.f_files - sv.f_ffree));
  return Status::OK;
}

Status NodeService::NodeExpandVolume(grpc::ServerContext*,
                                     const ::csi::v1::NodeExpandVolumeRequest* request,
                                     ::csi::v1::NodeExpandVolumeResponse* response) {
  auto call = metrics_.Begin("NodeExpandVolume");
  if (request->volume_id().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_id is required"));
  }
  if (request->volume_path().empty()) {
    return call.Done(Err(StatusCode::INVALID_ARGUMENT, "volume_path is required"));
  }
  if (!TryLock(request->volume_id())) {
    return call.Done(Err(StatusCode::ABORTED,
                         "an operation on volume " + request->volume_id() + " is in progress"));
  }
  Status s = Guarded([&] { return DoExpand(*request, response); });
  Unlock(request->volume_id());
  return call.Done(s);
}

Status NodeService::DoExpand(const ::csi::v1::NodeExpandVolumeRequest& req,
                             ::csi::v1::NodeExpandVolumeResponse* resp) {
  auto st = LoadState(req.volume_id());
  if (!st) return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " is not staged here");
  auto rec = GetVolume(req.volume_id());
  if (!rec) return Err(StatusCode::NOT_FOUND, "volume " + req.volume_id() + " not found");
  std::string error;
  if (DeviceSizeBytes(st->device) < rec->ExtentBytes()) {
    // The agent serves the port over the volume's new extent list (same port name: the agent
    // extends a served volume in place), then the device picks up the new size.
    agentpb::VirtualPort port;
    google::protobuf::Map<std::string, std::string> no_secrets;
    StagedVolume copy = *st;
    if (Status s = CreatePort(*rec, st->transport, no_secrets, &copy, &port); !s.ok()) {
      return Err(StatusCode::FAILED_PRECONDITION,
                 "the agent did not extend the port: " + s.error_message());
    }
    if (st->transport == "fuse" && !LoopRefresh(st->device, &error)) {
      return Err(StatusCode::INTERNAL, error);
    }
  }
  if (!st->block && !GrowFilesystem(st->device, st->staging_path, &error)) {
    return Err(StatusCode::INTERNAL, "growing the filesystem: " + error);
  }
  resp->set_capacity_bytes(static_cast<int64_t>(DeviceSizeBytes(st->device)));
  return Status::OK;
}

// --- NodeGetCapabilities / NodeGetInfo ------------------------------------------------------

Status NodeService::NodeGetCapabilities(grpc::ServerContext*,
                                        const ::csi::v1::NodeGetCapabilitiesRequest*,
                                        ::csi::v1::NodeGetCapabilitiesResponse* response) {
  auto call = metrics_.Begin("NodeGetCapabilities");
  using Rpc = ::csi::v1::NodeServiceCapability::RPC;
  for (auto type : {Rpc::STAGE_UNSTAGE_VOLUME, Rpc::GET_VOLUME_STATS, Rpc::VOLUME_CONDITION,
                    Rpc::EXPAND_VOLUME}) {
    response->add_capabilities()->mutable_rpc()->set_type(type);
  }
  return call.Done(Status::OK);
}

Status NodeService::NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest*,
                                ::csi::v1::NodeGetInfoResponse* response) {
  auto call = metrics_.Begin("NodeGetInfo");
  response->set_node_id(options_.node_id);
  response->set_max_volumes_per_node(options_.max_volumes_per_node);
  return call.Done(Status::OK);
}

}  // namespace vios::csi
