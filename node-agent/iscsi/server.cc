// Server: listening portals, event loops, connection ownership and orderly shutdown.
#include "node-agent/iscsi/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {

// Listener accepts on one portal; it lives on loop 0 and hands connections out round-robin.
class Server::Listener : public net::Watcher {
 public:
  Listener(Server* server, int fd, PortalInfo portal)
      : server_(server), fd_(fd), portal_(std::move(portal)) {}
  ~Listener() override { close(fd_); }
  void OnEvents(uint32_t) override {
    while (true) {
      int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or an error that the next readiness retries.
      server_->Accept(fd, portal_);
    }
  }
  int fd() const { return fd_; }
  const PortalInfo& portal() const { return portal_; }

 private:
  Server* server_;
  int fd_;
  PortalInfo portal_;
};

Server::Server(ServerConfig config, TargetRegistry* registry)
    : config_(std::move(config)), registry_(registry) {}

Server::~Server() { Stop(); }

bool Server::Start() {
  if (started_) return true;
  unsigned n = config_.event_loops == 0 ? 1 : config_.event_loops;
  for (unsigned i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>();
    Loop* raw = loop.get();
    std::promise<void> ready;
    raw->thread.loop().Post([raw, &ready] {
      // Keep-alive and login timeouts, checked four times a second per loop.
      raw->thread.loop().Every(std::chrono::milliseconds(250), [raw] {
        uint64_t now = net::EventLoop::NowMs();
        for (auto& [id, connection] : raw->connections) connection->Tick(now);
      });
      ready.set_value();
    });
    ready.get_future().wait();
    loops_.push_back(std::move(loop));
  }
  started_ = true;
  return true;
}

uint16_t Server::AddPortal(const std::string& host, uint16_t port, uint16_t tpgt,
                           std::string* error) {
  if (!started_) {
    *error = "server not started";
    return 0;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &result);
      rc != 0) {
    *error = std::string("bad portal address: ") + gai_strerror(rc);
    return 0;
  }
  int fd = socket(result->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, result->ai_addr, result->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    *error = std::string("cannot listen: ") + std::strerror(errno);
    freeaddrinfo(result);
    if (fd >= 0) close(fd);
    return 0;
  }
  freeaddrinfo(result);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  uint16_t bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                            : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  auto listener = std::make_unique<Listener>(this, fd, PortalInfo{host, bound, tpgt});
  Listener* raw = listener.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners_.push_back(std::move(listener));
  }
  std::promise<bool> added;
  loops_[0]->thread.loop().Post([this, raw, &added] {
    added.set_value(loops_[0]->thread.loop().Add(raw->fd(), EPOLLIN, raw));
  });
  if (!added.get_future().get()) {
    *error = "cannot watch the listening socket";
    return 0;
  }
  VIOS_LOG(kInfo, "iscsi portal listening")
      .Field("host", host)
      .Field("port", static_cast<unsigned>(bound))
      .Field("tpgt", static_cast<unsigned>(tpgt));
  return bound;
}

std::vector<PortalInfo> Server::Portals() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PortalInfo> out;
  for (const auto& l : listeners_) out.push_back(l->portal());
  return out;
}

void Server::AdoptConnection(int fd, const PortalInfo& portal) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  Accept(fd, portal);
}

void Server::Accept(int fd, const PortalInfo& portal) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Loop* loop = loops_[next_loop_++ % loops_.size()].get();
  if (loop->thread.loop().InLoopThread()) {
    Adopt(loop, fd, portal);
  } else {
    loop->thread.loop().Post([this, loop, fd, portal] { Adopt(loop, fd, portal); });
  }
}

void Server::Adopt(Loop* loop, int fd, PortalInfo portal) {
  uint64_t id = next_connection_id_++;
  auto connection = std::make_unique<Connection>(this, loop, id, fd, std::move(portal));
  if (!connection->Start()) {
    VIOS_LOG(kError, "cannot start iscsi connection");
    return;  // The destructor closes fd.
  }
  loop->connections.emplace(id, std::move(connection));
  ++connections_;
}

void Server::PostTo(Loop* loop, uint64_t id, std::function<void(Connection*)> fn) {
  loop->thread.loop().Post([loop, id, fn = std::move(fn)] {
    auto it = loop->connections.find(id);
    fn(it == loop->connections.end() ? nullptr : it->second.get());
  });
}

std::function<void()> Server::CloserFor(Loop* loop, uint64_t id) {
  return [loop, id] {
    PostTo(loop, id, [](Connection* c) {
      if (c != nullptr) c->Close("closed by the target");
    });
  };
}

ConnectionHandle Server::HandleFor(Loop* loop, uint64_t id, std::string initiator_port) {
  ConnectionHandle handle;
  handle.initiator_port = std::move(initiator_port);
  handle.close = CloserFor(loop, id);
  handle.abort = [loop, id](std::optional<uint64_t> lun, std::function<void()> done) {
    PostTo(loop, id, [lun, done = std::move(done)](Connection* c) mutable {
      if (c == nullptr) {
        done();
      } else {
        c->AbortForOtherNexus(lun, std::move(done));
      }
    });
  };
  return handle;
}

void Server::Finished(Loop* loop, uint64_t id) {
  // Destroy later: Finished is called from inside the connection's own member functions.
  loop->thread.loop().Post([this, loop, id] {
    if (loop->connections.erase(id) > 0) {
      --connections_;
      ++connections_closed_;
    }
  });
}

void Server::Stop() {
  if (!started_) return;
  started_ = false;
  std::vector<std::unique_ptr<Listener>> listeners;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners.swap(listeners_);
  }
  std::promise<void> unwatched;
  loops_[0]->thread.loop().Post([&] {
    for (auto& l : listeners) loops_[0]->thread.loop().Remove(l->fd());
    unwatched.set_value();
  });
  unwatched.get_future().wait();
  listeners.clear();
  for (auto& loop : loops_) {
    Loop* raw = loop.get();
    raw->thread.loop().Post([raw] {
      for (auto& [id, connection] : raw->connections) connection->Close("server stopping");
    });
  }
  // Connections finish once the Device has returned their tasks; wait for that.
  while (connections_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (auto& loop : loops_) loop->thread.Join();
  loops_.clear();
}

}  // namespace vios::iscsi
