// PeerClient: Health and Deliver calls with clear errors (peer_client.h).
#include "node-agent/peer/peer_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include "node-agent/peer/peer_message.h"

namespace vios::agent::peer {

std::shared_ptr<grpc::Channel> MakePeerChannel(const std::string& address,
                                               const std::string& server_name, const PeerTls& tls) {
  grpc::ChannelArguments args;
  if (!server_name.empty()) {
    args.SetSslTargetNameOverride(server_name);
  }
  // Fail fast on a dead peer instead of the default exponential reconnect (up to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // A peer that dies without closing its connections (power, link cut) is noticed by keepalive
  // pings, so calls in flight fail and reroute instead of waiting for their deadline.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Bulk I/O: let a stream carry whole 128 KiB..8 MiB payloads without waiting for window
  // updates, and read the socket in large chunks.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
  args.SetInt(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10);
  args.SetMaxReceiveMessageSize(static_cast<int>(kDefaultMaxIoBytes) + kMessageOverhead);
  args.SetMaxSendMessageSize(static_cast<int>(kDefaultMaxIoBytes) + kMessageOverhead);
  return grpc::CreateCustomChannel(address, ChannelCredentials(tls), args);
}

PeerClient::PeerClient(PeerClientOptions options) : options_(std::move(options)) {
  channel_ = MakePeerChannel(options_.address, options_.server_name, options_.tls);
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

ReservationResult ApplyReservationOn(const std::shared_ptr<grpc::Channel>& channel,
                                     const std::string& peer, const std::string& from_member,
                                     const std::string& volume, uint64_t version,
                                     const std::string& state_json,
                                     std::chrono::milliseconds deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  vios::peer::v1::ReservationUpdate req;
  req.set_volume(volume);
  req.set_version(version);
  req.set_state_json(state_json);
  req.set_from_member(from_member);
  vios::peer::v1::ReservationAck ack;
  grpc::Status status = vios::peer::v1::Peer::NewStub(channel)->ApplyReservation(&ctx, req, &ack);
  if (!status.ok()) {
    return {.applied = false,
            .version = 0,
            .error = "peer " + peer + ": ApplyReservation failed: " +
                     std::to_string(static_cast<int>(status.error_code())) + " " +
                     status.error_message()};
  }
  return {.applied = ack.applied(), .version = ack.version(), .error = ack.error()};
}

bool QueryReservationOn(const std::shared_ptr<grpc::Channel>& channel, const std::string& peer,
                        const std::string& from_member, const std::string& volume,
                        std::chrono::milliseconds deadline, ReservationCopy* copy,
                        std::string* error) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  vios::peer::v1::ReservationQuery req;
  req.set_volume(volume);
  req.set_from_member(from_member);
  vios::peer::v1::ReservationCopy resp;
  grpc::Status status = vios::peer::v1::Peer::NewStub(channel)->QueryReservation(&ctx, req, &resp);
  if (!status.ok()) {
    *error = "peer " + peer +
             ": QueryReservation failed: " + std::to_string(static_cast<int>(status.error_code())) +
             " " + status.error_message();
    return false;
  }
  *copy = ReservationCopy{.served = resp.served(),
                          .confirmed = resp.confirmed(),
                          .version = resp.version(),
                          .state_json = resp.state_json()};
  return true;
}

ReservationResult PeerClient::ApplyReservation(const std::string& volume, uint64_t version,
                                               const std::string& state_json,
                                               std::chrono::milliseconds deadline) {
  return ApplyReservationOn(channel_, options_.address, options_.member, volume, version,
                            state_json, deadline);
}

}  // namespace vios::agent::peer
