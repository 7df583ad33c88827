// TcpProxy: a cuttable loopback TCP forwarder for tests (tcp_proxy_for_test.h).
#include "node-agent/cluster/tcp_proxy_for_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace vios::agent::cluster::testing {
namespace {

sockaddr_in Addr(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    throw std::invalid_argument("TcpProxy: not an IPv4 address: " + host);
  }
  return a;
}

}  // namespace

TcpProxy::TcpProxy(std::string target) {
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) {
    throw std::invalid_argument("TcpProxy: target must be host:port: " + target);
  }
  target_host_ = target.substr(0, colon);
  target_port_ = std::stoi(target.substr(colon + 1));
}

TcpProxy::~TcpProxy() { Stop(); }

void TcpProxy::Start(int port) {
  if (running_) {
    return;
  }
  if (port == 0) {
    port = port_;
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Addr("127.0.0.1", port);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("TcpProxy: cannot listen on port " + std::to_string(port));
  }
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    throw std::runtime_error("TcpProxy: pipe failed");
  }
  running_ = true;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

void TcpProxy::Stop() {
  if (!running_.exchange(false)) {
    return;
  }
  char c = 0;
  (void)::write(wake_[1], &c, 1);
  accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : conns_) {
      ::shutdown(fd, SHUT_RDWR);
    }
    threads.swap(threads_);
  }
  for (auto& t : threads) {
    t.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : conns_) {
    ::close(fd);
  }
  conns_.clear();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpProxy::AcceptLoop() {
  while (running_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) <= 0) {
      continue;
    }
    if (p[1].revents != 0) {
      return;
    }
    const int in = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (in < 0) {
      continue;
    }
    const int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in t = Addr(target_host_, target_port_);
    if (::connect(out, reinterpret_cast<sockaddr*>(&t), sizeof(t)) != 0) {
      ::close(in);
      ::close(out);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    conns_.push_back(in);
    conns_.push_back(out);
    threads_.emplace_back([this, in, out] { Pump(in, out); });
  }
}

void TcpProxy::Pump(int a, int b) {
  char buf[16384];
  while (true) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, 500) < 0) {
      break;
    }
    if (!running_) {
      break;
    }
    bool done = false;
    for (int i = 0; i < 2 && !done; ++i) {
      if (p[i].revents == 0) {
        continue;
      }
      const ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        done = true;
        break;
      }
      const int to = i == 0 ? b : a;
      ssize_t off = 0;
      while (off < n) {
        const ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) {
          done = true;
          break;
        }
        off += w;
      }
    }
    if (done) {
      break;
    }
  }
  ::shutdown(a, SHUT_RDWR);
  ::shutdown(b, SHUT_RDWR);
}

}  // namespace vios::agent::cluster::testing
