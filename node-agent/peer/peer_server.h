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
//
// ExecuteIo (DESIGN.md §6) runs a peer's I/O on this agent's LOCAL device of a backend
// (local_devices; never the router, so a request is never forwarded again: no loops). Every field
// is checked first (peer_io.h: unknown pool/backend NOT_FOUND, bad op/offset/length/size
// INVALID_ARGUMENT naming the field); the I/O is submitted asynchronously from gRPC's callback
// API, so no gRPC thread waits for a backend. Served requests are counted per caller identity.
// ApplyReservation hands a peer's reservation state to reservation_applier (UNIMPLEMENTED when
// unset).
//
// With data_listen_address set, the server also runs the peer data channel (peer_data.h) on the
// same devices and counters, and Health reports its port.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <grpcpp/server.h>

#include "common/events/event_bus.h"
#include "node-agent/backend/block_device.h"
#include "node-agent/peer/peer_data.h"
#include "node-agent/peer/peer_io.h"
#include "node-agent/peer/peer_tls.h"
#include "proto/peer.grpc.pb.h"

namespace vios::agent::peer {

struct BackendReachability {
  std::string pool;
  std::string backend;
  bool reachable = false;
};

// ReservationCopy is this agent's copy of a volume's reservation state (QueryReservation).
struct ReservationCopy {
  bool served = false;     // false: this agent holds no copy of the volume
  bool confirmed = false;  // the copy is within its lease
  uint64_t version = 0;
  std::string state_json;
};

// ReservationResult is the outcome of ApplyReservation (the ReservationAck fields).
struct ReservationResult {
  bool applied = false;
  uint64_t version = 0;  // the version the local copy holds after the call
  std::string error;
};

struct PeerServerOptions {
  std::string listen_address;  // host:port; port 0 picks a free one (see port())
  // data_listen_address: where the peer data channel listens (peer_data.h), reported in Health;
  // empty: no data channel (peers use IoStream). Needs local_devices.
  std::string data_listen_address{};
  // data_allow_integrity: grant a data connection integrity mode (authenticated, not encrypted;
  // peer_data.h) when its client asks for it.
  bool data_allow_integrity = false;
  std::string member;
  std::string version;
  PeerTls tls;
  // backends reports the agent's paths for Health; empty: none reported.
  std::function<std::vector<BackendReachability>()> backends{};
  // local_devices returns a backend's LOCAL device (Router::local_backend(), never the Router
  // itself), or null when this agent has no such backend. Unset: ExecuteIo answers UNIMPLEMENTED.
  // Called per request: keep it a map lookup. The device must outlive the server.
  std::function<backend::BlockDevice*(const std::string& pool, const std::string& backend)>
      local_devices{};
  // max_io_bytes caps the data of one ExecuteIo read or write.
  uint64_t max_io_bytes = kDefaultMaxIoBytes;
  // reservation_applier installs a peer's reservation state (the persistent-reservation
  // component). Unset: ApplyReservation answers UNIMPLEMENTED. It may block (up to the caller's
  // deadline); exceptions become INTERNAL.
  std::function<ReservationResult(const std::string& volume, uint64_t version,
                                  const std::string& state_json, const std::string& from)>
      reservation_applier{};
  // reservation_query answers QueryReservation with this agent's copy. Unset: UNIMPLEMENTED.
  std::function<ReservationCopy(const std::string& volume)> reservation_query{};
};

class PeerServer {
 public:
  struct Stats {
    uint64_t health = 0;
    uint64_t delivered = 0;
    uint64_t duplicates = 0;
    uint64_t refused = 0;     // messages refused as malformed
    uint64_t io_refused = 0;  // ExecuteIo requests refused before reaching a backend
    uint64_t io_in_flight = 0;
    // io_served counts ExecuteIo requests executed, by the caller's certificate identity.
    std::map<std::string, uint64_t> io_served;
    uint64_t reservations = 0;  // ApplyReservation calls answered
  };

  PeerServer(PeerServerOptions options, events::EventBus& bus);
  ~PeerServer();
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  void Start();
  // Stop waits up to a second for calls in flight, then cancels them; it returns only when no
  // ExecuteIo is left inside a backend (their devices may then be destroyed).
  void Stop();
  int port() const { return port_; }
  int data_port() const { return data_ ? data_->port() : 0; }
  // SetDataAllowIntegrity: PeerServerOptions::data_allow_integrity for data connections made
  // after (spec.paths.peerDataProtection followed at run time).
  void SetDataAllowIntegrity(bool allow) {
    if (data_) data_->SetAllowIntegrity(allow);
  }
  Stats GetStats() const;

 private:
  class Service;

  PeerServerOptions options_;
  events::EventBus& bus_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<DataServer> data_;
  int port_ = 0;
};

}  // namespace vios::agent::peer
