// SimulatedAgent: what a vios-agent does toward the API server for registration, for the
// operator's integration tests: it creates its VIOSMember, reports status fields the agent owns,
// and renews its heartbeat Lease (name = member name, label vios.dev/member = member name) on a
// thread until paused or destroyed. It follows exactly the convention in operator/README.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"

namespace vios::op::testing {

struct AgentOptions {
  std::string ns;
  std::string name;
  std::string cluster;
  std::string node;
  std::string peer_address;  // "127.77.0.2:7470"
  int lease_duration_seconds = 3;
  std::chrono::milliseconds renew_every{1000};
  nlohmann::json paths = nlohmann::json::array();
};

class SimulatedAgent {
 public:
  SimulatedAgent(kube::Client& client, AgentOptions options);
  ~SimulatedAgent();

  // Register creates the VIOSMember and its status, then the Lease, and starts renewing.
  void Register();
  // Pause stops renewing (a killed agent); Resume renews at once and keeps renewing.
  void Pause();
  void Resume();
  // LastRenewal is the wall time of the last successful renewal.
  std::chrono::system_clock::time_point LastRenewal() const;

 private:
  void Renew();
  void Loop();

  kube::Client& client_;
  const AgentOptions options_;
  std::mutex renew_mu_;  // held across a renewal, so Pause waits for one in flight
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool paused_ = false;
  bool stopping_ = false;
  std::chrono::system_clock::time_point last_renewal_{};
  std::thread thread_;
};

}  // namespace vios::op::testing
