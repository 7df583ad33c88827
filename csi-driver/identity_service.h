// IdentityService: the CSI Identity service (CSI spec "Identity Service RPC"), served by both
// modes. Probe reflects real readiness: the controller reaches the API server, the node plugin
// reaches its agent.
#pragma once

#include <functional>
#include <string>

#include "csi-driver/rpc_metrics.h"
#include "proto/csi.grpc.pb.h"

namespace vios::csi {

class IdentityService final : public ::csi::v1::Identity::Service {
 public:
  // ready returns OK when the plugin can serve, or a status saying what is missing.
  IdentityService(bool controller, std::function<grpc::Status()> ready, RpcMetrics& metrics)
      : controller_(controller), ready_(std::move(ready)), metrics_(metrics) {}

  grpc::Status GetPluginInfo(grpc::ServerContext* context,
                             const ::csi::v1::GetPluginInfoRequest* request,
                             ::csi::v1::GetPluginInfoResponse* response) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext* context,
                                     const ::csi::v1::GetPluginCapabilitiesRequest* request,
                                     ::csi::v1::GetPluginCapabilitiesResponse* response) override;
  grpc::Status Probe(grpc::ServerContext* context, const ::csi::v1::ProbeRequest* request,
                     ::csi::v1::ProbeResponse* response) override;

 private:
  bool controller_;
  std::function<grpc::Status()> ready_;
  RpcMetrics& metrics_;
};

}  // namespace vios::csi
