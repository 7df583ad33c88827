// vios-agentctl: talks to a vios-agent's local API (proto/agent.proto, unix socket) — what the
// CSI node plugin does, for SREs on a node (`kubectl exec ... vios-agentctl info`) and for tests.
//
//   vios-agentctl --socket /run/vios/agent.sock info
//   vios-agentctl --socket S list [VOLUME]
//   vios-agentctl --socket S create '{"name": "p1", "volumeId": "v", ...}'   (CreateVirtualPort)
//   vios-agentctl --socket S delete NAME
//   vios-agentctl --socket S stats PORT
//
// Output: the response as JSON, exit 0; or "CODE: message" on stderr and exit 10 + the gRPC code.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "proto/agent.grpc.pb.h"

namespace {

namespace api = vios::agent::v1;

constexpr char kUsage[] =
    "usage: vios-agentctl --socket PATH info | list [VOLUME] | create JSON | delete NAME |"
    " stats PORT\n";

int Print(const grpc::Status& status, const google::protobuf::Message& response) {
  if (!status.ok()) {
    std::fprintf(stderr, "%d: %s\n", static_cast<int>(status.error_code()),
                 status.error_message().c_str());
    return 10 + static_cast<int>(status.error_code());
  }
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(response, &out, options);
  std::cout << out;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  int i = 1;
  if (i + 1 < argc && std::string(argv[i]) == "--socket") {
    socket = argv[i + 1];
    i += 2;
  }
  if (socket.empty() || i >= argc) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[i++];
  const std::string arg = i < argc ? argv[i] : "";
  auto channel = grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials());
  api::Agent::Stub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (command == "info") {
    api::AgentInfoResponse response;
    return Print(stub.AgentInfo(&ctx, api::AgentInfoRequest(), &response), response);
  }
  if (command == "list") {
    api::ListVirtualPortsRequest request;
    request.set_volume_id(arg);
    api::ListVirtualPortsResponse response;
    return Print(stub.ListVirtualPorts(&ctx, request, &response), response);
  }
  if (command == "create") {
    api::CreateVirtualPortRequest request;
    auto parsed = google::protobuf::util::JsonStringToMessage(arg, &request);
    if (!parsed.ok()) {
      std::fprintf(stderr, "request JSON: %s\n", std::string(parsed.message()).c_str());
      return 2;
    }
    api::CreateVirtualPortResponse response;
    return Print(stub.CreateVirtualPort(&ctx, request, &response), response);
  }
  if (command == "delete" && !arg.empty()) {
    api::DeleteVirtualPortRequest request;
    request.set_name(arg);
    api::DeleteVirtualPortResponse response;
    return Print(stub.DeleteVirtualPort(&ctx, request, &response), response);
  }
  if (command == "stats" && !arg.empty()) {
    api::GetVolumeStatsRequest request;
    request.set_port_name(arg);
    api::GetVolumeStatsResponse response;
    return Print(stub.GetVolumeStats(&ctx, request, &response), response);
  }
  std::fputs(kUsage, stderr);
  return 2;
}
