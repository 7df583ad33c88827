// The cluster half of LocalPersistentReservations (DESIGN.md §7): the lease on the local copy,
// Allows, peer updates (Apply / ApplyVolume), notification of peers after a commit, and the
// worker and refresher threads.
#include <thread>

#include "common/log/log.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/reservation/pr_crd_layout.h"

namespace vios::reservation {
namespace {

int64_t Nanos(LocalPersistentReservations::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// FencedState: what Allows checks against when the local copy is not confirmed: an Exclusive
// Access reservation held by a port no nexus can match, so every nexus is a non-registrant
// (SPC-4 §5.13.1 table 52): only the commands that never conflict pass.
const PrState& FencedState() {
  static const PrState state = [] {
    PrState s;
    s.type = PrType::kExclusiveAccess;
    s.holder = PrPort{.initiatorName = "", .isid = {}, .targetPort = "", .relativeTargetPort = 0};
    return s;
  }();
  return state;
}

}  // namespace

void PrCounters::ObserveNotify(std::chrono::nanoseconds latency) {
  const double seconds = std::chrono::duration<double>(latency).count();
  size_t i = 0;
  while (i < kNotifyBoundsSeconds.size() && seconds > kNotifyBoundsSeconds[i]) {
    ++i;
  }
  notify_buckets[i].fetch_add(1, std::memory_order_relaxed);
  notify_count.fetch_add(1, std::memory_order_relaxed);
  notify_sum_ns.fetch_add(static_cast<uint64_t>(latency.count()), std::memory_order_relaxed);
}

LocalPersistentReservations::~LocalPersistentReservations() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  stop_cv_.notify_all();
  if (worker_.joinable()) {
    worker_.join();  // Drains the queue first: every posted task completes.
  }
  if (refresher_.joinable()) {
    refresher_.join();
  }
}

void LocalPersistentReservations::StartThreads() {
  if (worker_.joinable()) {
    return;
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  if (options_.refresh_interval.count() > 0) {
    refresher_ = std::thread([this] { RefresherLoop(); });
  }
}

void LocalPersistentReservations::Post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (worker_.joinable() && !stopping_) {
      // Cluster mode: the store write and the peers' answers take milliseconds (or the lease);
      // the transport thread that submitted the command must not wait for them.
      queue_.push_back(std::move(work));
      queue_cv_.notify_one();
      return;
    }
  }
  work();
}

void LocalPersistentReservations::Defer(uint64_t installs, Clock::time_point deadline,
                                        std::function<void()> work) {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  deferred_.push_back(Deferred{installs, deadline, std::move(work)});
  queue_cv_.notify_one();
}

bool LocalPersistentReservations::TakeDeferredLocked(bool all, std::function<void()>* work) {
  const uint64_t installs = installs_.load(std::memory_order_acquire);
  const Clock::time_point now = Clock::now();
  for (auto it = deferred_.begin(); it != deferred_.end(); ++it) {
    if (all || it->installs != installs || it->deadline <= now) {
      *work = std::move(it->work);
      deferred_.erase(it);
      return true;
    }
  }
  return false;
}

void LocalPersistentReservations::WorkerLoop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      for (;;) {
        // New commands first: a local release the deferred command waits for is among them.
        if (!queue_.empty()) {
          work = std::move(queue_.front());
          queue_.pop_front();
          break;
        }
        if (TakeDeferredLocked(/*all=*/stopping_, &work)) {
          break;
        }
        if (stopping_) {
          return;  // Drained.
        }
        if (deferred_.empty()) {
          queue_cv_.wait(lock);
        } else {
          Clock::time_point wake = deferred_.front().deadline;
          for (const Deferred& d : deferred_) {
            wake = std::min(wake, d.deadline);
          }
          queue_cv_.wait_until(lock, wake);
        }
      }
    }
    work();
  }
}

void LocalPersistentReservations::RefresherLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      if (stop_cv_.wait_for(lock, options_.refresh_interval, [this] { return stopping_; })) {
        return;
      }
    }
    std::string error;
    if (!Refresh(&error)) {
      VIOS_LOG(kWarning, "reservation state refresh failed")
          .Field("volume", options_.volume)
          .Field("error", error);
    }
  }
}

void LocalPersistentReservations::Confirm(Clock::time_point at) {
  const int64_t ns = Nanos(at);
  int64_t current = confirmed_ns_.load(std::memory_order_relaxed);
  while (current < ns &&
         !confirmed_ns_.compare_exchange_weak(current, ns, std::memory_order_release)) {
  }
}

bool LocalPersistentReservations::Confirmed() const {
  if (!cluster_) {
    return true;
  }
  const int64_t confirmed = confirmed_ns_.load(std::memory_order_acquire);
  return confirmed != 0 &&
         Nanos(Clock::now()) - confirmed <
             std::chrono::duration_cast<std::chrono::nanoseconds>(options_.lease).count();
}

bool LocalPersistentReservations::Refresh(std::string* error) {
  StoredPrState stored;
  // The copy is confirmed as of when the request left: any write the store had accepted before
  // then is in the answer (a GET is a quorum read).
  const Clock::time_point asked = Clock::now();
  if (!store_->Load(&stored, error)) {
    counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
    return cluster_ && ConfirmFromPeers(error);
  }
  Install(stored.state, stored.version);
  Confirm(asked);
  return true;
}

bool LocalPersistentReservations::ConfirmFromPeers(std::string* error) {
  if (options_.notifier == nullptr) {
    return false;
  }
  // Why the peers' copies confirm ours: a write W that we may have missed was committed by a
  // peer, which installs W right after its CAS answer and, if W did not reach us, waits until
  // that answer + lease before completing. If that peer answers us without W, the answer left
  // before W's CAS answer arrived, so our lease counted from `asked` ends before the writer's
  // wait does. If it answers with W, we install W. Every peer must answer.
  const Clock::time_point asked = Clock::now();
  std::vector<PrPeerNotifier::PeerState> states;
  std::string peer_error;
  if (!options_.notifier->QueryAll(options_.volume, &states, &peer_error)) {
    *error += "; peers: " + peer_error;
    return false;
  }
  for (const PrPeerNotifier::PeerState& peer : states) {
    std::optional<PrUpdate> update = DecodeUpdate(peer.state_json, &peer_error);
    if (!update.has_value()) {
      *error += "; peer answer: " + peer_error;
      return false;
    }
    Install(update->state, peer.version);
  }
  Confirm(asked);
  return true;
}

bool LocalPersistentReservations::Current(uint64_t* version, std::string* state_json) const {
  if (!Confirmed()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  *version = version_;
  *state_json = EncodeUpdate(PrUpdate{state_, {}, {}});
  return true;
}

bool LocalPersistentReservations::Allows(const scsi::Nexus& nexus, const uint8_t* cdb,
                                         size_t cdb_length) {
  const std::span<const uint8_t> command(cdb, cdb_length);
  if (cluster_ && !Confirmed()) {
    // The local copy may miss a PREEMPT made elsewhere: treat every nexus as fenced.
    if (reservation::Allows(FencedState(), nexus, command)) {
      return true;
    }
    counters_.stale_refusals.fetch_add(1, std::memory_order_relaxed);
    counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (unrestricted_.load(std::memory_order_acquire)) {
    return true;
  }
  bool allowed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    allowed = reservation::Allows(state_, nexus, command);
  }
  if (!allowed) {
    counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  }
  return allowed;
}

void LocalPersistentReservations::Propagate(const PrResult& result, uint64_t version,
                                            Clock::time_point committed_at) {
  if (!cluster_ || options_.notifier == nullptr) {
    return;
  }
  const std::string update =
      EncodeUpdate(PrUpdate{result.state, result.unit_attentions, result.aborted});
  std::string error;
  const Clock::time_point start = Clock::now();
  const bool ok = options_.notifier->NotifyAll(options_.volume, version, update, &error);
  counters_.ObserveNotify(Clock::now() - start);
  if (ok) {
    return;
  }
  // Some peer may still run on the old copy. It confirmed that copy before our write reached
  // the store, so its lease ends before committed_at + lease (by its clock; the margin covers
  // clock rates and in-flight I/O). Completing earlier would let a fenced initiator write after
  // the PREEMPT completed.
  counters_.notify_failures.fetch_add(1, std::memory_order_relaxed);
  VIOS_LOG(kWarning, "reservation peers did not confirm the update; waiting out the lease")
      .Field("volume", options_.volume)
      .Field("version", version)
      .Field("error", error);
  std::this_thread::sleep_until(committed_at + options_.lease + options_.lease_margin);
}

bool LocalPersistentReservations::Apply(uint64_t version, const std::string& state_json,
                                        std::string* error) {
  std::optional<PrUpdate> update = DecodeUpdate(state_json, error);
  if (!update.has_value()) {
    return false;
  }
  // A peer's update is not a confirmation of the whole copy (another writer's update may still
  // be on its way), so the lease is not extended here; only store reads extend it.
  Install(update->state, version);
  // Unit attentions and aborts are delivered even if a newer state was already installed (a
  // reload after a conflict): they are events, not state.
  Publish(update->unit_attentions, update->aborted);
  return true;
}

bool LocalPersistentReservations::ApplyVolume(const nlohmann::json& object, std::string* error) {
  std::optional<uint64_t> version = ParseResourceVersion(object);
  if (!version.has_value()) {
    *error = "VIOSVolume without a numeric metadata.resourceVersion";
    return false;
  }
  nlohmann::json reservation;
  if (object.contains("status") && object["status"].is_object() &&
      object["status"].contains("reservation")) {
    reservation = object["status"]["reservation"];
  }
  std::optional<PrState> state = PrStateFromCrdJson(reservation, error);
  if (!state.has_value()) {
    return false;
  }
  Install(*state, *version);
  return true;
}

}  // namespace vios::reservation
