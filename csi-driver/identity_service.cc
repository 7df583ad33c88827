// IdentityService (see identity_service.h).
#include "csi-driver/identity_service.h"

#include "csi-driver/names.h"

namespace vios::csi {

#ifndef VIOS_VERSION
#define VIOS_VERSION "0.1.0"
#endif

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*,
                                            const ::csi::v1::GetPluginInfoRequest*,
                                            ::csi::v1::GetPluginInfoResponse* response) {
  auto call = metrics_.Begin("GetPluginInfo");
  response->set_name(kDriverName);
  response->set_vendor_version(VIOS_VERSION);
  return call.Done(grpc::Status::OK);
}

grpc::Status IdentityService::GetPluginCapabilities(
    grpc::ServerContext*, const ::csi::v1::GetPluginCapabilitiesRequest*,
    ::csi::v1::GetPluginCapabilitiesResponse* response) {
  auto call = metrics_.Begin("GetPluginCapabilities");
  // Both modes advertise the same plugin capabilities: the CO asks whichever endpoint it has.
  response->add_capabilities()->mutable_service()->set_type(
      ::csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
  response->add_capabilities()->mutable_volume_expansion()->set_type(
      ::csi::v1::PluginCapability::VolumeExpansion::ONLINE);
  (void)controller_;
  return call.Done(grpc::Status::OK);
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const ::csi::v1::ProbeRequest*,
                                    ::csi::v1::ProbeResponse* response) {
  auto call = metrics_.Begin("Probe");
  grpc::Status status = ready_ ? ready_() : grpc::Status::OK;
  if (!status.ok()) {
    // CSI spec Probe: FAILED_PRECONDITION when the plugin is not healthy; ready=false would
    // also be allowed, but an error carries the reason to the CO's logs.
    return call.Done(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, status.error_message()));
  }
  response->mutable_ready()->set_value(true);
  return call.Done(grpc::Status::OK);
}

}  // namespace vios::csi
