// TcpProxy (tests only): forwards a loopback port to another address, and can be cut and
// restored on the same port — an API server that goes away and comes back at the address the
// agent knows, with established connections (watches) dropped on the cut.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vios::agent::cluster::testing {

class TcpProxy {
 public:
  // target is "host:port" (IPv4 literal).
  explicit TcpProxy(std::string target);
  ~TcpProxy();

  // Start listens on 127.0.0.1:port (0 picks one on the first start; later starts reuse it).
  void Start(int port = 0);
  // Stop closes the listener and every forwarded connection.
  void Stop();
  int port() const { return port_; }

 private:
  void AcceptLoop();
  void Pump(int a, int b);

  std::string target_host_;
  int target_port_ = 0;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  std::vector<int> conns_;            // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread accept_thread_;
  std::atomic<bool> running_{false};
};

}  // namespace vios::agent::cluster::testing
