// PeerServer: this agent's end of the peer channel (proto/peer.proto, DESIGN.md §5): gRPC over
// mutual TLS, answering Health and handing delivered cluster messages to the local event bus.
//
//   PeerServer server({.listen_address = "127.0.0.1:7443", .member = node, .version = "0.1.0",
//                      .tls = {.ca_file = ..., .cert_file = ..., .key_file = ...}},
//                     bus);
//   server.Start();          // throws PeerError when the address cannot be bound or TLS is bad
//   ... server.port() ...
//   server.Stop();
//
// A delivered message keeps its source (the originating member), so the bus orders it with that
// member's other messages; the receiver adds attributes "peer.identity" (the common name of the
// certificate the caller presented) and "peer.sequence" (the sender's sequence number). A repeat
// of the last sequence seen from a source (a retried Deliver) is acknowledged and dropped.
// ExecuteIo answers UNIMPLEMENTED until the reroute issue adds it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <grpcpp/server.h>

#include "common/events/event_bus.h"
#include "node-agent/peer/peer_tls.h"
#include "proto/peer.grpc.pb.h"

namespace vios::agent::peer {

struct BackendReachability {
  std::string pool;
  std::string backend;
  bool reachable = false;
};

struct PeerServerOptions {
  std::string listen_address;  // host:port; port 0 picks a free one (see port())
  std::string member;
  std::string version;
  PeerTls tls;
  // backends reports the agent's paths for Health; empty: none reported.
  std::function<std::vector<BackendReachability>()> backends;
};

class PeerServer {
 public:
  struct Stats {
    uint64_t health = 0;
    uint64_t delivered = 0;
    uint64_t duplicates = 0;
    uint64_t refused = 0;  // messages refused as malformed
  };

  PeerServer(PeerServerOptions options, events::EventBus& bus);
  ~PeerServer();
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  void Start();
  // Stop waits up to a second for calls in flight, then cancels them.
  void Stop();
  int port() const { return port_; }
  Stats GetStats() const;

 private:
  class Service;

  PeerServerOptions options_;
  events::EventBus& bus_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace vios::agent::peer
