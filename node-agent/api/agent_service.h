// AgentService: the agent's local gRPC API (proto/agent.proto) over a unix socket, used by the
// CSI node plugin on the same node. It validates requests and maps PortManager outcomes to gRPC
// status codes; the socket is created with mode 0600 (root-only: no unauthenticated control
// endpoint, DESIGN.md §10).
//
//   AgentService service(&agent);
//   auto server = AgentApiServer::Start("/run/vios/agent.sock", &service, &error);
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "node-agent/api/port_manager.h"
#include "proto/agent.grpc.pb.h"

namespace vios::agent {

class AgentService final : public v1::Agent::Service {
 public:
  explicit AgentService(PortManager* ports) : ports_(ports) {}

  grpc::Status CreateVirtualPort(grpc::ServerContext* context,
                                 const v1::CreateVirtualPortRequest* request,
                                 v1::CreateVirtualPortResponse* response) override;
  grpc::Status DeleteVirtualPort(grpc::ServerContext* context,
                                 const v1::DeleteVirtualPortRequest* request,
                                 v1::DeleteVirtualPortResponse* response) override;
  grpc::Status ListVirtualPorts(grpc::ServerContext* context,
                                const v1::ListVirtualPortsRequest* request,
                                v1::ListVirtualPortsResponse* response) override;
  grpc::Status GetVolumeStats(grpc::ServerContext* context,
                              const v1::GetVolumeStatsRequest* request,
                              v1::GetVolumeStatsResponse* response) override;
  grpc::Status AgentInfo(grpc::ServerContext* context, const v1::AgentInfoRequest* request,
                         v1::AgentInfoResponse* response) override;

  // ToRequest validates and converts a CreateVirtualPortRequest; on failure returns a
  // non-OK status naming the field.
  static grpc::Status ToRequest(const v1::CreateVirtualPortRequest& in, PortRequest* out);

 private:
  PortManager* ports_;
};

// AgentApiServer owns the gRPC server listening on a unix socket.
class AgentApiServer {
 public:
  static std::unique_ptr<AgentApiServer> Start(const std::string& socket_path,
                                               AgentService* service, std::string* error);
  ~AgentApiServer();
  void Stop();

 private:
  AgentApiServer(std::string path, std::unique_ptr<grpc::Server> server)
      : path_(std::move(path)), server_(std::move(server)) {}
  std::string path_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace vios::agent
