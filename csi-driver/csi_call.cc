// vios-csi-call: issues one CSI call with a JSON request and prints the JSON response, for e2e
// tests and debugging (the kubernetes-csi `csc` tool's job, without a Go dependency).
//
//   vios-csi-call unix:///run/csi.sock NodeStageVolume '{"volumeId": "v", ...}'
//
// Output: the response as JSON on stdout and exit 0, or "CODE: message" on stderr and exit
// 10 + the gRPC code (so tests can assert the code).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <iostream>
#include <map>
#include <string>

#include "csi-driver/rpc_metrics.h"
#include "proto/csi.grpc.pb.h"

namespace {

using Invoker = std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&,
                                           const std::string&, std::string*)>;

// Call parses request JSON into Req, calls method on a fresh Stub and renders the response.
template <typename Stub, typename Req, typename Resp>
Invoker Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*)) {
  return [method](const std::shared_ptr<grpc::Channel>& channel, const std::string& json,
                  std::string* out) -> grpc::Status {
    Req req;
    auto parsed = google::protobuf::util::JsonStringToMessage(json, &req);
    if (!parsed.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "request JSON: " + std::string(parsed.message()));
    }
    Stub stub(channel);
    Resp resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    grpc::Status s = (stub.*method)(&ctx, req, &resp);
    if (s.ok()) {
      google::protobuf::util::JsonPrintOptions options;
      options.always_print_primitive_fields = true;
      (void)google::protobuf::util::MessageToJsonString(resp, out, options);
    }
    return s;
  };
}

}  // namespace

int main(int argc, char** argv) {
  using C = ::csi::v1::Controller::Stub;
  using N = ::csi::v1::Node::Stub;
  using I = ::csi::v1::Identity::Stub;
  const std::map<std::string, Invoker> kMethods = {
      {"GetPluginInfo", Call(&I::GetPluginInfo)},
      {"Probe", Call(&I::Probe)},
      {"CreateVolume", Call(&C::CreateVolume)},
      {"DeleteVolume", Call(&C::DeleteVolume)},
      {"ControllerPublishVolume", Call(&C::ControllerPublishVolume)},
      {"ControllerUnpublishVolume", Call(&C::ControllerUnpublishVolume)},
      {"ControllerExpandVolume", Call(&C::ControllerExpandVolume)},
      {"ControllerGetVolume", Call(&C::ControllerGetVolume)},
      {"ListVolumes", Call(&C::ListVolumes)},
      {"GetCapacity", Call(&C::GetCapacity)},
      {"NodeStageVolume", Call(&N::NodeStageVolume)},
      {"NodeUnstageVolume", Call(&N::NodeUnstageVolume)},
      {"NodePublishVolume", Call(&N::NodePublishVolume)},
      {"NodeUnpublishVolume", Call(&N::NodeUnpublishVolume)},
      {"NodeGetVolumeStats", Call(&N::NodeGetVolumeStats)},
      {"NodeExpandVolume", Call(&N::NodeExpandVolume)},
      {"NodeGetInfo", Call(&N::NodeGetInfo)},
  };
  if (argc < 3 || argc > 4 || kMethods.find(argv[2]) == kMethods.end()) {
    std::cerr << "usage: vios-csi-call unix:///path/csi.sock METHOD ['{json request}']\nmethods:";
    for (const auto& [name, unused] : kMethods) std::cerr << " " << name;
    std::cerr << "\n";
    return 2;
  }
  std::string endpoint = argv[1];
  if (endpoint.rfind("unix://", 0) == 0) endpoint = "unix:" + endpoint.substr(7);
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  std::string out;
  grpc::Status s = kMethods.at(argv[2])(channel, argc == 4 ? argv[3] : "{}", &out);
  if (!s.ok()) {
    std::cerr << vios::csi::CodeName(s.error_code()) << ": " << s.error_message() << "\n";
    return 10 + static_cast<int>(s.error_code());
  }
  std::cout << out << "\n";
  return 0;
}
