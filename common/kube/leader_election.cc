// LeaderElector: the acquire/renew/release protocol on a Lease object.
#include "common/kube/leader_election.h"

#include <ctime>
#include <random>
#include <stdexcept>

#include "common/log/log.h"

namespace vios::kube {
namespace {

std::string HolderOf(const nlohmann::json& spec) {
  auto it = spec.find("holderIdentity");
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "";
}

Client MakeElectionClient(const Client& base, std::chrono::milliseconds renew_deadline) {
  // A renewal request must not outlive the renew deadline by much; half of it leaves room for a
  // second attempt before the deadline.
  Config config = base.config();
  config.request_timeout = std::min(config.request_timeout, renew_deadline / 2);
  config.connect_timeout = std::min(config.connect_timeout, renew_deadline / 2);
  RetryPolicy retry;
  retry.max_attempts = 1;  // the election loop is the retry
  return Client(config, retry);
}

}  // namespace

std::string MicroTimeNow() {
  auto now = std::chrono::system_clock::now();
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(micros % 1000000));
  return out;
}

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config, const Clock* clock)
    : config_(std::move(config)), clock_(clock) {
  if (config_.lease_name.empty() || config_.lease_namespace.empty() || config_.identity.empty()) {
    throw std::invalid_argument("leader election: lease namespace, name and identity are required");
  }
  if (!(config_.retry_period < config_.renew_deadline &&
        config_.renew_deadline < config_.lease_duration)) {
    throw std::invalid_argument(
        "leader election: need retry_period < renew_deadline < lease_duration");
  }
  client_ = std::make_unique<Client>(MakeElectionClient(client, config_.renew_deadline));
}

LeaderElector::~LeaderElector() { Stop(); }

nlohmann::json LeaderElector::NewSpec(const nlohmann::json& old_spec, bool transition) const {
  nlohmann::json spec = old_spec.is_object() ? old_spec : nlohmann::json::object();
  std::string now = MicroTimeNow();
  spec["holderIdentity"] = config_.identity;
  spec["leaseDurationSeconds"] =
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(
                               config_.lease_duration + std::chrono::milliseconds(999))
                               .count());
  spec["renewTime"] = now;
  if (transition) {
    spec["acquireTime"] = now;
    int64_t transitions = spec.value("leaseTransitions", int64_t{0});
    spec["leaseTransitions"] =
        old_spec.is_object() && old_spec.contains("holderIdentity") ? transitions + 1 : transitions;
  }
  return spec;
}

// Observe records the lease as seen now; the expiry clock restarts whenever the record changes,
// so takeover never depends on the other candidate's wall clock.
void LeaderElector::Observe(const nlohmann::json& spec) {
  std::string holder = HolderOf(spec);
  bool new_leader = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (spec != observed_spec_) {
      observed_spec_ = spec;
      observed_time_ = clock_->Now();
    }
    if (holder != observed_holder_) {
      observed_holder_ = holder;
      new_leader = !holder.empty();
    }
  }
  if (new_leader && config_.callbacks.on_new_leader) config_.callbacks.on_new_leader(holder);
}

bool LeaderElector::TryAcquireOrRenew() {
  const ResourceRef& leases = resources::kLeases;
  Clock::TimePoint start = clock_->Now();
  nlohmann::json lease;
  try {
    lease = client_->Get(leases, config_.lease_namespace, config_.lease_name);
  } catch (const ApiError& e) {
    if (e.kind() != ErrorKind::kNotFound) {
      VIOS_LOG(kWarning, "leader election: cannot read lease").Field("error", e.what());
      return false;
    }
    nlohmann::json fresh = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", config_.lease_name}, {"namespace", config_.lease_namespace}}},
        {"spec", NewSpec(nullptr, true)}};
    try {
      nlohmann::json created = client_->Create(leases, config_.lease_namespace, fresh);
      Observe(created["spec"]);
    } catch (const ApiError&) {
      return false;  // AlreadyExists: another candidate was faster; transport: try later
    }
    std::lock_guard<std::mutex> lock(mu_);
    last_renew_ = start;
    return true;
  }
  nlohmann::json spec = lease.value("spec", nlohmann::json::object());
  Observe(spec);
  std::string holder = HolderOf(spec);
  bool mine = holder == config_.identity;
  if (!mine && !holder.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (observed_time_ + config_.lease_duration > clock_->Now()) return false;  // still valid
  }
  lease["spec"] = NewSpec(spec, !mine);
  try {
    // The resourceVersion read above is the precondition: a concurrent writer makes this fail.
    nlohmann::json updated = client_->Update(leases, lease);
    Observe(updated["spec"]);
  } catch (const ApiError& e) {
    if (e.kind() != ErrorKind::kConflict) {
      VIOS_LOG(kWarning, "leader election: cannot update lease").Field("error", e.what());
    }
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  last_renew_ = start;
  return true;
}

bool LeaderElector::Sleep(Clock::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  Clock::TimePoint deadline = clock_->Now() + d;
  while (!stopping_ && clock_->Now() < deadline) clock_->WaitUntil(cv_, lock, deadline);
  return !stopping_;
}

void LeaderElector::Run() {
  thread_local std::mt19937 rng(std::random_device{}());
  // Campaign: retry_period with up to 20% jitter so candidates do not collide in lockstep.
  std::uniform_int_distribution<int64_t> jitter(0, config_.retry_period.count() / 5);
  while (!TryAcquireOrRenew()) {
    if (!Sleep(config_.retry_period + std::chrono::milliseconds(jitter(rng)))) return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    leading_ = true;  // even if Stop() came meanwhile: the lease is ours and is released below
  }
  VIOS_LOG(kInfo, "became leader")
      .Field("lease", config_.lease_name)
      .Field("identity", config_.identity);
  if (config_.callbacks.on_started_leading) config_.callbacks.on_started_leading();
  // Renew: every retry_period; give up when no renewal succeeded within renew_deadline.
  while (Sleep(config_.retry_period)) {
    bool renewed = false;
    for (;;) {
      if (TryAcquireOrRenew()) {
        renewed = true;
        break;
      }
      Clock::TimePoint deadline;
      {
        std::lock_guard<std::mutex> lock(mu_);
        deadline = last_renew_ + config_.renew_deadline;
      }
      if (clock_->Now() + config_.retry_period / 2 >= deadline) break;
      if (!Sleep(config_.retry_period / 2)) break;
    }
    if (!renewed) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) {
        VIOS_LOG(kWarning, "leader election: lost the lease").Field("lease", config_.lease_name);
        break;
      }
    }
  }
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
  }
  if (stopping && config_.release_on_stop) Release();
  {
    std::lock_guard<std::mutex> lock(mu_);
    leading_ = false;
  }
  if (config_.callbacks.on_stopped_leading) config_.callbacks.on_stopped_leading();
}

// Release clears the holder so a successor need not wait for the lease to expire. The
// resourceVersion precondition keeps it from clobbering a lease someone else already holds.
void LeaderElector::Release() {
  try {
    nlohmann::json lease =
        client_->Get(resources::kLeases, config_.lease_namespace, config_.lease_name);
    nlohmann::json& spec = lease["spec"];
    if (HolderOf(spec) != config_.identity) return;
    spec["holderIdentity"] = "";
    spec["leaseDurationSeconds"] = 1;
    spec["renewTime"] = MicroTimeNow();
    client_->Update(resources::kLeases, lease);
    VIOS_LOG(kInfo, "released leadership").Field("lease", config_.lease_name);
  } catch (const ApiError& e) {
    VIOS_LOG(kWarning, "leader election: release failed").Field("error", e.what());
  }
}

void LeaderElector::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

bool LeaderElector::IsLeader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leading_ && clock_->Now() < last_renew_ + config_.renew_deadline;
}

std::string LeaderElector::LeaderIdentity() const {
  std::lock_guard<std::mutex> lock(mu_);
  return observed_holder_;
}

}  // namespace vios::kube
