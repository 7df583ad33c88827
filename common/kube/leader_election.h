// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules: a candidate takes
// the lease over only after it has seen the lease unchanged for a whole lease duration on its own
// monotonic clock; a leader that cannot renew within renew_deadline (< lease_duration) stops
// leading; every write carries the resourceVersion it read, so of two candidates racing for the
// same lease exactly one write wins.
//
//   kube::LeaderElector elector(client, {.lease_namespace = "vios-system",
//                                        .lease_name = "vios-operator",
//                                        .identity = pod_name,
//                                        .callbacks = {.on_started_leading = [&] { Go(); },
//                                                      .on_stopped_leading = [&] { Halt(); }}});
//   std::thread t([&] { elector.Run(); });   // returns when leadership is lost or Stop() is called
//   ... if (elector.IsLeader()) { act } ...
//   elector.Stop(); t.join();                // releases the lease so a successor starts at once
//
// Work done as leader should check IsLeader() before acting: it turns false at the renew
// deadline even while a renewal request is still hanging.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "common/kube/clock.h"

namespace vios::kube {

struct LeaderCallbacks {
  std::function<void()> on_started_leading;  // called on Run's thread; must not block long
  std::function<void()> on_stopped_leading;  // called once when a leadership ends
  std::function<void(const std::string& identity)> on_new_leader;  // a new holder was observed
};

struct LeaderElectionConfig {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;
  std::chrono::milliseconds lease_duration{std::chrono::seconds(15)};
  std::chrono::milliseconds renew_deadline{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_period{std::chrono::seconds(2)};
  bool release_on_stop = true;
  LeaderCallbacks callbacks;
};

class LeaderElector {
 public:
  // LeaderElector checks the timing (retry_period < renew_deadline < lease_duration) and throws
  // std::invalid_argument otherwise. It uses its own connection settings derived from client's:
  // one attempt per request and a request timeout of renew_deadline / 2.
  LeaderElector(Client& client, LeaderElectionConfig config,
                const Clock* clock = RealClock::Instance());
  ~LeaderElector();

  // Run campaigns until it leads, then renews until Stop() or a renewal misses the deadline.
  void Run();
  // Stop makes Run return (releasing the lease if leading and release_on_stop). Thread-safe.
  void Stop();
  // IsLeader is true while leading and the last successful renewal is within renew_deadline.
  bool IsLeader() const;
  // LeaderIdentity is the holder last observed in the lease ("" if none).
  std::string LeaderIdentity() const;

  // TryAcquireOrRenew is one round of the protocol (exposed for tests): true if this candidate
  // holds the lease afterwards.
  bool TryAcquireOrRenew();

 private:
  nlohmann::json NewSpec(const nlohmann::json& old_spec, bool transition) const;
  void Observe(const nlohmann::json& spec);
  void Release();
  bool Sleep(Clock::Duration d);

  std::unique_ptr<Client> client_;
  const LeaderElectionConfig config_;
  const Clock* clock_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stopping_ = false;
  bool leading_ = false;
  Clock::TimePoint last_renew_{};     // start of the last successful acquire/renew
  nlohmann::json observed_spec_;      // the lease spec as last seen
  Clock::TimePoint observed_time_{};  // when observed_spec_ last changed, our clock
  std::string observed_holder_;
};

// MicroTimeNow formats the wall clock as a metav1.MicroTime ("2026-11-25T21:49:03.123456Z").
std::string MicroTimeNow();

}  // namespace vios::kube
