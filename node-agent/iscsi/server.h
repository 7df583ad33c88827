// The iSCSI target server: portals (listening sockets, one TargetPortalGroupTag each), a pool of
// event loops (one per core) that own the connections, the process-wide session table, and the
// TargetRegistry it serves. This is the public entry point of node-agent/iscsi.
//
//   TargetRegistry registry;
//   registry.Add(std::make_shared<Target>(TargetConfig{...}, &device));
//   Server server(ServerConfig{}, &registry);
//   server.Start();
//   uint16_t port = server.AddPortal("127.0.0.1", 3260, 1, &error);
//   ...
//   server.Stop();
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "node-agent/iscsi/chap.h"
#include "node-agent/iscsi/negotiation.h"
#include "node-agent/iscsi/session.h"
#include "node-agent/iscsi/target.h"
#include "node-agent/net/event_loop.h"

namespace vios::iscsi {

class Connection;

struct ServerConfig {
  TargetLimits limits;
  unsigned event_loops = 1;           // Threads; one per core in production.
  uint32_t queue_depth = 128;         // Commands in flight per session (CmdSN window).
  uint32_t max_io_bytes = 16u << 20;  // Largest EDTL accepted; larger gets CHECK CONDITION.
  // Keep-alive (RFC 7143 §11.19): NOP-In ping after this much idle time; close if no answer.
  std::chrono::milliseconds nop_interval{5000};
  std::chrono::milliseconds nop_timeout{15000};
  std::chrono::milliseconds login_timeout{15000};  // Connections that never finish login.
  ChapCredentials discovery_chap;  // CHAP for discovery sessions; empty secret = None.
};

// A listening portal. address is what SendTargets reports ("127.0.0.1:3260").
struct PortalInfo {
  std::string host;
  uint16_t port = 0;
  uint16_t tpgt = 1;
};

class Server {
 public:
  Server(ServerConfig config, TargetRegistry* registry);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Start launches the event loops. AddPortal binds and listens (port 0 picks one) and returns
  // the bound port, or 0 with *error set. Stop closes portals and connections, waits for their
  // in-flight tasks, and joins the loops.
  bool Start();
  uint16_t AddPortal(const std::string& host, uint16_t port, uint16_t tpgt, std::string* error);
  void Stop();
  // AdoptConnection serves an already connected socket as if accepted on portal (hand-over of
  // connections during live upgrade, fuzzing). Takes ownership of fd. Thread-safe.
  void AdoptConnection(int fd, const PortalInfo& portal);

  const ServerConfig& config() const { return config_; }
  TargetRegistry& registry() { return *registry_; }
  SessionTable& sessions() { return sessions_; }
  std::vector<PortalInfo> Portals() const;
  size_t connection_count() const { return connections_.load(); }
  uint64_t connections_closed() const { return connections_closed_.load(); }

  // Per-loop state: the loop thread and the connections it owns (touched on that thread only).
  struct Loop {
    net::LoopThread thread;
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections;
  };
  // CloserFor returns a function that closes connection id on loop from any thread.
  std::function<void()> CloserFor(Loop* loop, uint64_t id);
  // HandleFor returns the Target's handle on connection id (close and abort from any thread).
  ConnectionHandle HandleFor(Loop* loop, uint64_t id, std::string initiator_port);
  // PostTo runs fn on loop's thread with connection id, if it still exists.
  static void PostTo(Loop* loop, uint64_t id, std::function<void(Connection*)> fn);
  // Finished destroys a fully drained connection (posted to its loop).
  void Finished(Loop* loop, uint64_t id);

 private:
  class Listener;
  void Accept(int fd, const PortalInfo& portal);
  void Adopt(Loop* loop, int fd, PortalInfo portal);

  ServerConfig config_;
  TargetRegistry* registry_;
  SessionTable sessions_;
  std::vector<std::unique_ptr<Loop>> loops_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // Guarded by mu_.
  std::atomic<uint64_t> next_connection_id_{1};
  std::atomic<unsigned> next_loop_{0};
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> connections_closed_{0};
  bool started_ = false;
};

}  // namespace vios::iscsi
