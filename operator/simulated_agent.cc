// A simulated agent's registration and heartbeat (see simulated_agent.h).
#include "operator/simulated_agent.h"

#include "operator/api_time.h"
#include "operator/caches.h"

namespace vios::op::testing {

using nlohmann::json;

SimulatedAgent::SimulatedAgent(kube::Client& client, AgentOptions options)
    : client_(client), options_(std::move(options)) {}

SimulatedAgent::~SimulatedAgent() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SimulatedAgent::Register() {
  json member = {{"apiVersion", "vios.dev/v1alpha1"},
                 {"kind", "VIOSMember"},
                 {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}},
                 {"spec", {{"cluster", options_.cluster}, {"nodeName", options_.node}}}};
  client_.Create(kube::resources::kVIOSMembers, options_.ns, member);
  // The agent's own status fields; it never writes state (except Leaving) or the operator's
  // conditions.
  client_.PatchStatus(kube::resources::kVIOSMembers, options_.ns, options_.name,
                      {{"status",
                        {{"peerAddress", options_.peer_address},
                         {"version", "0.1.0-test"},
                         {"leaseName", options_.name},
                         {"paths", options_.paths},
                         {"virtualPorts", 0}}}});
  const std::string now = FormatMicroTime(std::chrono::system_clock::now());
  json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata",
                 {{"name", options_.name},
                  {"namespace", options_.ns},
                  {"labels", {{kMemberLabel, options_.name}}}}},
                {"spec",
                 {{"holderIdentity", options_.name},
                  {"leaseDurationSeconds", options_.lease_duration_seconds},
                  {"acquireTime", now},
                  {"renewTime", now}}}};
  client_.Create(kube::resources::kLeases, options_.ns, lease);
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_renewal_ = std::chrono::system_clock::now();
  }
  thread_ = std::thread([this] { Loop(); });
}

void SimulatedAgent::Renew() {
  std::lock_guard<std::mutex> renew_lock(renew_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (paused_) return;
  }
  auto now = std::chrono::system_clock::now();
  client_.Patch(kube::resources::kLeases, options_.ns, options_.name,
                {{"spec", {{"renewTime", FormatMicroTime(now)}}}});
  std::lock_guard<std::mutex> lock(mu_);
  last_renewal_ = now;
}

void SimulatedAgent::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.renew_every);
    if (stopping_) break;
    if (paused_) continue;
    lock.unlock();
    try {
      Renew();
    } catch (const std::exception&) {
      // The API server may be briefly unavailable; the next tick retries.
    }
    lock.lock();
  }
}

void SimulatedAgent::Pause() {
  std::lock_guard<std::mutex> renew_lock(renew_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = true;
}

void SimulatedAgent::Resume() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
  }
  Renew();
}

std::chrono::system_clock::time_point SimulatedAgent::LastRenewal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_renewal_;
}

}  // namespace vios::op::testing
