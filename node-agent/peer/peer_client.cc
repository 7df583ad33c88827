// PeerClient: Health and Deliver calls with clear errors (peer_client.h).
#include "node-agent/peer/peer_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include "node-agent/peer/peer_message.h"

namespace vios::agent::peer {

PeerClient::PeerClient(PeerClientOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  if (!options_.server_name.empty()) {
    args.SetSslTargetNameOverride(options_.server_name);
  }
  // Fail fast on a dead peer instead of the default exponential reconnect (up to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  channel_ = grpc::CreateCustomChannel(options_.address, ChannelCredentials(options_.tls), args);
  stub_ = vios::peer::v1::Peer::NewStub(channel_);
}

void PeerClient::Fail(const char* call, const grpc::Status& status) const {
  std::string what = "peer " + options_.address + ": " + call +
                     " failed: " + std::to_string(static_cast<int>(status.error_code())) + " " +
                     status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    what +=
        " (peer down or unreachable, or the mutual-TLS handshake failed: both certificates "
        "must come from the cluster CA and the peer's must name " +
        (options_.server_name.empty() ? options_.address : options_.server_name) + ")";
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    what += " (no answer within " + std::to_string(options_.deadline.count()) + " ms)";
  }
  throw PeerError(static_cast<int>(status.error_code()), what);
}

vios::peer::v1::HealthResponse PeerClient::Health() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.deadline);
  vios::peer::v1::HealthRequest req;
  req.set_from_member(options_.member);
  vios::peer::v1::HealthResponse resp;
  grpc::Status status = stub_->Health(&ctx, req, &resp);
  if (!status.ok()) {
    Fail("Health", status);
  }
  return resp;
}

void PeerClient::Deliver(const events::Message& message) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.deadline);
  vios::peer::v1::DeliverResponse resp;
  grpc::Status status = stub_->Deliver(&ctx, ToProto(message), &resp);
  if (!status.ok()) {
    Fail("Deliver", status);
  }
  if (!resp.accepted()) {
    throw PeerError(static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION),
                    "peer " + options_.address + ": Deliver was not accepted");
  }
}

}  // namespace vios::agent::peer
