// PeerClient: calls one peer's Peer service (proto/peer.proto) over mutual TLS.
//
//   PeerClient peer({.address = "127.0.0.2:7443", .server_name = "node-b", .member = "node-a",
//                    .tls = {...}});
//   vios::peer::v1::HealthResponse h = peer.Health();   // throws PeerError
//   peer.Deliver(message);                               // throws PeerError
//   ReservationResult r = peer.ApplyReservation("pvc-1", 7, json, std::chrono::seconds(2));
//
// Errors say which peer, which call, the gRPC code and what to check: a peer that does not trust
// our certificate (or that we do not trust) fails the handshake and reports UNAVAILABLE.
// Thread-safe; one channel per client, reconnecting on its own.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "common/events/message.h"
#include "node-agent/peer/peer_server.h"
#include "node-agent/peer/peer_tls.h"
#include "proto/peer.grpc.pb.h"

namespace vios::agent::peer {

struct PeerClientOptions {
  std::string address;  // host:port from the peer's VIOSMember status.peerAddress
  // server_name is the name the peer's certificate must carry (its member name); empty: the
  // host part of address must be in the certificate's subjectAltName.
  std::string server_name;
  std::string member;  // this agent, sent as from_member
  PeerTls tls;
  std::chrono::milliseconds deadline{std::chrono::seconds(5)};
};

// MakePeerChannel opens the mutual-TLS channel to a peer (fast reconnect, messages up to one
// maximal ExecuteIo). One channel per peer member can be shared by its PeerClient and the
// PeerPaths of every backend (router/peer_path.h). Throws PeerError on bad TLS files.
std::shared_ptr<grpc::Channel> MakePeerChannel(const std::string& address,
                                               const std::string& server_name, const PeerTls& tls);

// ApplyReservationOn / QueryReservationOn call a peer's reservation RPCs on an open channel
// (the agent shares one channel per peer across all its uses). Neither throws: a transport
// failure or refusal is applied=false / false with *error naming the peer and the code.
ReservationResult ApplyReservationOn(const std::shared_ptr<grpc::Channel>& channel,
                                     const std::string& peer, const std::string& from_member,
                                     const std::string& volume, uint64_t version,
                                     const std::string& state_json,
                                     std::chrono::milliseconds deadline);
bool QueryReservationOn(const std::shared_ptr<grpc::Channel>& channel, const std::string& peer,
                        const std::string& from_member, const std::string& volume,
                        std::chrono::milliseconds deadline, ReservationCopy* copy,
                        std::string* error);

class PeerClient {
 public:
  explicit PeerClient(PeerClientOptions options);

  vios::peer::v1::HealthResponse Health();
  void Deliver(const events::Message& message);
  // ApplyReservation asks the peer to install a volume's reservation state (DESIGN.md §7). It
  // does not throw: a transport failure or refusal comes back as applied=false with the error.
  ReservationResult ApplyReservation(const std::string& volume, uint64_t version,
                                     const std::string& state_json,
                                     std::chrono::milliseconds deadline);
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  const std::string& address() const { return options_.address; }

 private:
  [[noreturn]] void Fail(const char* call, const grpc::Status& status) const;

  PeerClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<vios::peer::v1::Peer::Stub> stub_;
};

}  // namespace vios::agent::peer
