// PeerFanout: carries this member's own cluster messages to its peers over the peer channel
// (DESIGN.md §5: "Peers exchange messages over the peer channel").
//
//   PeerFanout fanout({.member = node, .tls = tls, .peers = [&] {
//                        std::vector<PeerTarget> out;
//                        for (auto& [name, p] : agent.Snapshot().peers)
//                          if (p.state != "Down" && !p.peer_address.empty())
//                            out.push_back({name, p.peer_address});
//                        return out; }},
//                     bus);
//
// It listens on the bus for the configured types (default: path and reroute messages — what
// peers cannot learn from the API server themselves; membership and configuration messages each
// agent derives from its own watches). Only messages whose source is this member are sent, so a
// message delivered from a peer is never sent on again. One worker thread sends in bus order, so
// each peer receives this member's messages in order; a peer that fails is logged and counted
// and does not hold up the others beyond its deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/events/event_bus.h"
#include "node-agent/peer/peer_client.h"
#include "node-agent/peer/peer_tls.h"

namespace vios::agent::peer {

struct PeerTarget {
  std::string name;     // member name: the name its certificate must carry
  std::string address;  // host:port
};

// DefaultFanoutTypes: messages a peer needs from us and cannot read from the API server.
std::vector<events::MessageType> DefaultFanoutTypes();

struct PeerFanoutOptions {
  std::string member;
  PeerTls tls;
  std::function<std::vector<PeerTarget>()> peers;
  std::vector<events::MessageType> types = DefaultFanoutTypes();
  std::chrono::milliseconds deadline{std::chrono::seconds(2)};
  size_t max_queue = 10000;  // beyond this, new messages are dropped (counted)
};

class PeerFanout {
 public:
  struct Stats {
    uint64_t sent = 0;     // deliveries acknowledged by a peer
    uint64_t failed = 0;   // deliveries that failed
    uint64_t dropped = 0;  // messages dropped because the queue was full
  };

  PeerFanout(PeerFanoutOptions options, events::EventBus& bus);
  // The destructor drops messages not yet sent; do not destroy from a bus callback (it flushes
  // the bus).
  ~PeerFanout();
  PeerFanout(const PeerFanout&) = delete;
  PeerFanout& operator=(const PeerFanout&) = delete;

  Stats GetStats() const { return {sent_.load(), failed_.load(), dropped_.load()}; }

 private:
  void Enqueue(const events::Message& m);
  void Run();
  PeerClient& ClientFor(const PeerTarget& t);

  const PeerFanoutOptions options_;
  events::EventBus& bus_;
  std::vector<events::RegistrationId> registrations_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<events::Message> queue_;                           // guarded by mu_
  bool stopping_ = false;                                       // guarded by mu_
  std::map<std::string, std::unique_ptr<PeerClient>> clients_;  // worker thread only
  std::atomic<uint64_t> sent_{0}, failed_{0}, dropped_{0};
  std::thread worker_;
};

}  // namespace vios::agent::peer
