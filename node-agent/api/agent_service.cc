#include "node-agent/api/agent_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "common/log/log.h"

namespace vios::agent {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

grpc::Status FromError(const PortError& e) {
  switch (e.kind()) {
    case PortError::Kind::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
    case PortError::Kind::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, e.what());
    case PortError::Kind::kAlreadyExists:
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, e.what());
    case PortError::Kind::kFailedPrecondition:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, e.what());
    case PortError::Kind::kInternal:
      break;
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
}

// Guard runs fn and turns any exception into a gRPC status: nothing a client sends can take the
// agent down.
template <typename Fn>
grpc::Status Guard(const char* method, Fn fn) {
  try {
    return fn();
  } catch (const PortError& e) {
    VIOS_LOG(kWarning, "agent API request refused")
        .Field("method", method)
        .Field("error", e.what());
    return FromError(e);
  } catch (const std::exception& e) {
    VIOS_LOG(kError, "agent API request failed").Field("method", method).Field("error", e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(method) + ": " + e.what());
  }
}

void ToProto(const PortInfo& in, v1::VirtualPort* out) {
  out->set_name(in.name);
  out->set_volume_id(in.volume_id);
  out->set_transport(in.transport == AttachTransport::kFuse ? v1::ATTACH_TRANSPORT_FUSE
                                                            : v1::ATTACH_TRANSPORT_ISCSI);
  out->set_target_iqn(in.target_iqn);
  out->set_portal(in.portal);
  out->set_lun(in.lun);
  out->set_fuse_path(in.fuse_path);
  out->set_size_bytes(in.size_bytes);
  out->set_block_size(in.block_size);
  for (const auto& i : in.allowed_initiators) out->add_allowed_initiators(i);
  out->set_active_sessions(in.active_sessions);
}

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

grpc::Status AgentService::ToRequest(const v1::CreateVirtualPortRequest& in, PortRequest* out) {
  if (!ValidName(in.name())) {
    return Invalid("name: '" + in.name() + "' must be 1-128 characters of [A-Za-z0-9._-]");
  }
  if (!ValidName(in.volume_id())) {
    return Invalid("volume_id: '" + in.volume_id() +
                   "' must be 1-128 characters of [A-Za-z0-9._-]");
  }
  if (in.pool().empty()) return Invalid("pool: required");
  if (in.extents().empty()) return Invalid("extents: at least one extent is required");
  uint64_t total = 0;
  for (int i = 0; i < in.extents_size(); ++i) {
    const auto& e = in.extents(i);
    if (e.backend().empty()) return Invalid("extents[" + std::to_string(i) + "].backend: required");
    if (e.length() == 0 || e.length() % 4096 || e.offset() % 4096) {
      return Invalid("extents[" + std::to_string(i) +
                     "]: offset and length must be multiples of 4096, length non-zero");
    }
    if (total + e.length() < total) return Invalid("extents: total length overflows");
    total += e.length();
    out->extents.push_back(PortExtent{e.backend(), e.offset(), e.length()});
  }
  if (in.size_bytes() != 0 && in.size_bytes() != total) {
    return Invalid("size_bytes: " + std::to_string(in.size_bytes()) +
                   " does not match the extents' total " + std::to_string(total));
  }
  switch (in.transport()) {
    case v1::ATTACH_TRANSPORT_ISCSI:
    case v1::ATTACH_TRANSPORT_UNSPECIFIED:
      out->transport = AttachTransport::kIscsi;
      break;
    case v1::ATTACH_TRANSPORT_FUSE:
      out->transport = AttachTransport::kFuse;
      break;
    default:
      return Invalid("transport: unknown value " + std::to_string(in.transport()));
  }
  if (out->transport == AttachTransport::kIscsi && in.allowed_initiators().empty()) {
    return Invalid("allowed_initiators: an iSCSI port needs at least one initiator");
  }
  if (!in.chap().mutual_secret().empty() && in.chap().secret().empty()) {
    return Invalid("chap: mutual CHAP needs the initiator's secret as well");
  }
  for (const std::string* secret : {&in.chap().secret(), &in.chap().mutual_secret()}) {
    if (!secret->empty() && (secret->size() < 12 || secret->size() > 255)) {
      return Invalid("chap: secrets must be 12 to 255 characters long");
    }
  }
  out->name = in.name();
  out->volume_id = in.volume_id();
  out->pool = in.pool();
  out->size_bytes = total;
  out->allowed_initiators.assign(in.allowed_initiators().begin(), in.allowed_initiators().end());
  out->chap_user = in.chap().user();
  out->chap_secret = in.chap().secret();
  out->mutual_user = in.chap().mutual_user();
  out->mutual_secret = in.chap().mutual_secret();
  out->read_only = in.read_only();
  if (in.has_identity()) {
    out->owner = in.identity().pod_name().empty()
                     ? in.identity().node_name()
                     : in.identity().pod_namespace() + "/" + in.identity().pod_name();
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::CreateVirtualPort(grpc::ServerContext*,
                                             const v1::CreateVirtualPortRequest* request,
                                             v1::CreateVirtualPortResponse* response) {
  return Guard("CreateVirtualPort", [&] {
    PortRequest req;
    grpc::Status valid = ToRequest(*request, &req);
    if (!valid.ok()) return valid;
    ToProto(ports_->CreatePort(req), response->mutable_port());
    return grpc::Status::OK;
  });
}

grpc::Status AgentService::DeleteVirtualPort(grpc::ServerContext*,
                                             const v1::DeleteVirtualPortRequest* request,
                                             v1::DeleteVirtualPortResponse* response) {
  return Guard("DeleteVirtualPort", [&] {
    if (request->name().empty()) return Invalid("name: required");
    response->set_existed(ports_->DeletePort(request->name()));
    return grpc::Status::OK;
  });
}

grpc::Status AgentService::ListVirtualPorts(grpc::ServerContext*,
                                            const v1::ListVirtualPortsRequest* request,
                                            v1::ListVirtualPortsResponse* response) {
  return Guard("ListVirtualPorts", [&] {
    for (const PortInfo& p : ports_->ListPorts(request->volume_id())) {
      ToProto(p, response->add_ports());
    }
    return grpc::Status::OK;
  });
}

grpc::Status AgentService::GetVolumeStats(grpc::ServerContext*,
                                          const v1::GetVolumeStatsRequest* request,
                                          v1::GetVolumeStatsResponse* response) {
  return Guard("GetVolumeStats", [&] {
    if (request->port_name().empty()) return Invalid("port_name: required");
    VolumeStats s = ports_->PortVolumeStats(request->port_name());
    response->set_read_ops(s.read_ops);
    response->set_write_ops(s.write_ops);
    response->set_read_bytes(s.read_bytes);
    response->set_write_bytes(s.write_bytes);
    response->set_errors(s.errors);
    response->set_size_bytes(s.size_bytes);
    return grpc::Status::OK;
  });
}

grpc::Status AgentService::AgentInfo(grpc::ServerContext*, const v1::AgentInfoRequest*,
                                     v1::AgentInfoResponse* response) {
  return Guard("AgentInfo", [&] {
    vios::agent::AgentInfo info = ports_->Info();
    response->set_node_name(info.node_name);
    response->set_version(info.version);
    for (const std::string& pool : info.pools) response->add_pools()->set_name(pool);
    for (const PathInfo& p : info.paths) {
      auto* path = response->add_paths();
      path->set_pool(p.pool);
      path->set_backend(p.backend);
      path->set_state(p.state == "Healthy"    ? v1::PATH_STATE_HEALTHY
                      : p.state == "Degraded" ? v1::PATH_STATE_DEGRADED
                                              : v1::PATH_STATE_LOST);
      path->set_detail(p.detail);
    }
    response->set_virtual_ports(info.virtual_ports);
    return grpc::Status::OK;
  });
}

std::unique_ptr<AgentApiServer> AgentApiServer::Start(const std::string& socket_path,
                                                      AgentService* service, std::string* error) {
  ::unlink(socket_path.c_str());  // A stale socket from a previous run.
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    *error = "cannot listen on unix socket " + socket_path;
    return nullptr;
  }
  if (::chmod(socket_path.c_str(), 0600) != 0) {
    *error = "cannot restrict permissions of " + socket_path;
    server->Shutdown();
    return nullptr;
  }
  return std::unique_ptr<AgentApiServer>(new AgentApiServer(socket_path, std::move(server)));
}

AgentApiServer::~AgentApiServer() { Stop(); }

void AgentApiServer::Stop() {
  if (!server_) return;
  server_->Shutdown();
  server_->Wait();
  server_.reset();
  ::unlink(path_.c_str());
}

}  // namespace vios::agent
