// LocalPersistentReservations: the scsi::ReservationPolicy of one logical unit, with SPC-4
// persistent reservations and SPC-2 RESERVE/RELEASE (PrEngine), its state (the "local copy")
// behind a mutex and written through a PrStateStore before a command completes.
//
// Local mode (one agent; file or memory store):
//
//   auto store = std::make_unique<FilePrStateStore>(state_dir + "/pr-" + volume + ".json");
//   auto pr = std::make_shared<LocalPersistentReservations>(std::move(store));
//   if (!pr->Init(&error)) { ... }                      // loads APTPL state
//   pr->SetUnitAttentionSink([&](const PrUnitAttention& ua) {
//     device->EstablishUnitAttention(ua.port.InitiatorPort(), ua.port.targetPort, lun, ua.asc);
//   });
//   LogicalUnit lu(&volume, config, pr.get());
//
// Cluster mode (DESIGN.md §7; every agent serving the volume has one, over the same VIOSVolume):
//
//   ClusterOptions cluster{.volume = id, .notifier = &peer_notifier};
//   auto pr = std::make_shared<LocalPersistentReservations>(
//       std::make_unique<KubePrStateStore>(client, ns, name), cluster);
//   pr->Init(&error);                                   // loads the state, starts the threads
//   peer channel ApplyReservation(volume, v, json) -> pr->Apply(v, json, &error)
//   informer update of the VIOSVolume             -> pr->ApplyVolume(object)
//
// A PR OUT (and RESERVE/RELEASE(6/10)) then runs on the policy's worker thread: compute against
// the local copy, CompareAndSwap with the resourceVersion precondition (on a conflict reload,
// recompute, retry), install, NotifyAll peers and wait for them, only then complete. I/O is
// checked against the local copy, which is trusted only for `lease` after the last time it was
// confirmed against the store; after that every nexus is treated as fenced (README.md).
//
// Unit attentions the standard requires for OTHER nexuses (RESERVATIONS PREEMPTED/RELEASED,
// REGISTRATIONS PREEMPTED) go to the UnitAttentionSink, PREEMPT AND ABORT's victims to the
// AbortSink, on the executing agent and on every peer that applies the update.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_peer_notifier.h"
#include "node-agent/reservation/pr_state_store.h"
#include "node-agent/scsi/reservation.h"

namespace vios::reservation {

// Counters of reservation activity, read by PrCollector (pr_metrics.h).
struct PrCounters {
  static constexpr size_t kActions = 9;  // ProutAction 0..7, 8 = invalid service action.
  static constexpr std::array<double, 14> kNotifyBoundsSeconds{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  std::atomic<uint64_t> prout_commands{0};
  std::array<std::atomic<uint64_t>, kActions> prout_by_action{};
  std::atomic<uint64_t> prin_commands{0};
  std::atomic<uint64_t> conflicts{0};       // RESERVATION CONFLICT answers, Allows included.
  std::atomic<uint64_t> stale_refusals{0};  // Of those: local copy not confirmed within lease.
  std::atomic<uint64_t> preemptions{0};
  std::atomic<uint64_t> store_conflicts{0};  // CompareAndSwap retries.
  std::atomic<uint64_t> store_errors{0};
  std::atomic<uint64_t> notify_failures{0};  // NotifyAll false: the lease was waited out.
  // Notification latency (NotifyAll call to return), buckets per kNotifyBoundsSeconds + inf.
  std::array<std::atomic<uint64_t>, kNotifyBoundsSeconds.size() + 1> notify_buckets{};
  std::atomic<uint64_t> notify_count{0};
  std::atomic<uint64_t> notify_sum_ns{0};

  void ObserveNotify(std::chrono::nanoseconds latency);
};

// ClusterOptions turn on cluster mode.
struct ClusterOptions {
  std::string volume;                  // Passed to the notifier.
  PrPeerNotifier* notifier = nullptr;  // Null: no peers (one agent serves the volume).
  // How long the local copy is trusted after it was last confirmed against the store. A peer
  // that missed an update stops allowing I/O this long after the update's writer got its CAS
  // answer at the latest; the writer waits it out when NotifyAll fails.
  std::chrono::milliseconds lease{10000};
  // The refresher re-reads the store this often (0: no refresher thread; call Refresh()).
  std::chrono::milliseconds refresh_interval{3000};
  // Margin added to the lease when waiting it out (clock rate differences, in-flight I/O).
  std::chrono::milliseconds lease_margin{1000};
};

class LocalPersistentReservations final : public scsi::ReservationPolicy {
 public:
  using UnitAttentionSink = std::function<void(const PrUnitAttention&)>;
  using AbortSink = std::function<void(const PrPort&)>;
  using Clock = std::chrono::steady_clock;
  // How long a RESERVE(6/10) that conflicts with an SPC-2 holder waits for the state to change
  // before it is answered (cluster mode; see ExecuteNow).
  static constexpr std::chrono::milliseconds kSpc2Grace{1000};

  // Local mode. store may be null: a MemoryPrStateStore is used.
  explicit LocalPersistentReservations(std::unique_ptr<PrStateStore> store = nullptr);
  // Cluster mode (see above).
  LocalPersistentReservations(std::unique_ptr<PrStateStore> store, ClusterOptions cluster);
  ~LocalPersistentReservations() override;

  // Init loads the stored state. Local mode: without APTPL only the generation survives a
  // restart (SPC-4 §5.13.4: an agent restart is the LU's power loss); SPC-2 reservations never
  // survive. Cluster mode: the state is the cluster's and is kept whole (an agent restart is not a
  // power loss of a LU other agents still serve); starts the worker and refresher threads, and
  // when the store is unreachable starts with an unconfirmed (fenced) copy instead of failing.
  bool Init(std::string* error);

  // Sinks are called after the state changed, outside the state lock, before the command
  // completes.
  void SetUnitAttentionSink(UnitAttentionSink sink);
  // AbortSink receives the nexuses whose tasks PREEMPT AND ABORT must abort (SPC-4 §5.13.11.4.5).
  void SetAbortSink(AbortSink sink);

  // --- Cluster mode entry points (thread-safe, never block on the store). ---
  // Apply installs a peer's update (EncodeUpdate text) if version is newer than the local copy,
  // and posts its unit attentions and aborts in any case. false: malformed, *error says why.
  bool Apply(uint64_t version, const std::string& state_json, std::string* error);
  // ApplyVolume installs status.reservation of a VIOSVolume object (informer) if its
  // resourceVersion is newer. false: malformed.
  bool ApplyVolume(const nlohmann::json& object, std::string* error);
  // Current: the local copy as a peer's QueryAll answer (EncodeUpdate text, no events). false
  // (and the RPC must fail) when the copy is not Confirmed(): an unconfirmed copy cannot vouch
  // for another.
  bool Current(uint64_t* version, std::string* state_json) const;
  // Refresh re-reads the store; on success the local copy is confirmed as of the request. When
  // the store is unreachable it asks every peer (PrPeerNotifier::QueryAll) instead: if all
  // answer, the newest copy among them and ours is current as of the question.
  bool Refresh(std::string* error);
  // Confirmed: the local copy was confirmed against the store within the lease (always true in
  // local mode).
  bool Confirmed() const;

  PrState State() const;
  uint64_t Version() const;
  PrCounters& counters() { return counters_; }
  const PrCounters& counters() const { return counters_; }
  bool cluster_mode() const { return cluster_; }

  // scsi::ReservationPolicy.
  bool Handles(uint8_t opcode) const override;
  bool Allows(const scsi::Nexus& nexus, const uint8_t* cdb, size_t cdb_length) override;
  void Execute(scsi::Task* task) override;
  void NexusRemoved(const scsi::Nexus& nexus) override;
  void Reset(scsi::TaskManagementFunction function, const scsi::Nexus& nexus) override;

 private:
  using Compute = std::function<PrResult(const PrState&)>;

  // ExecuteNow runs one reservation command to completion (op_mutex_ held by the caller).
  // may_defer: a RESERVE(6/10) that conflicts with an SPC-2 holder may wait (kSpc2Grace) for
  // the state to change before it is answered (see Defer).
  void ExecuteNow(scsi::Task* task, bool may_defer = false);
  // Defer queues work to run once the local copy changed after `installs` (a peer's update, a
  // commit) or at deadline, whichever comes first; the worker keeps running other work
  // meanwhile. Cluster mode only.
  void Defer(uint64_t installs, Clock::time_point deadline, std::function<void()> work);
  bool TakeDeferredLocked(bool all, std::function<void()>* work);
  // Commit writes result->state through the store (retrying on a version conflict by reloading
  // and recomputing with compute) and installs it. False: store error, state unchanged.
  // *committed_at: when the store's answer arrived (for the lease wait).
  // expected_version: the version result was computed against; *committed_version the new one.
  // *base (if not null): the state the final result was computed against.
  bool Commit(const Compute& compute, uint64_t expected_version, PrResult* result,
              uint64_t* committed_version, Clock::time_point* committed_at,
              PrState* base = nullptr);
  // Install sets the local copy if version is newer (or equal: same state).
  void Install(const PrState& state, uint64_t version);
  void Confirm(Clock::time_point at);
  bool ConfirmFromPeers(std::string* error);
  // Propagate notifies peers of a committed change and waits for them (or the lease).
  void Propagate(const PrResult& result, uint64_t version, Clock::time_point committed_at);
  void Publish(const std::vector<PrUnitAttention>& uas, const std::vector<PrPort>& aborted);
  void ChangeSpc2(const Compute& compute, const char* what);
  // Post queues work for the worker (cluster mode) or runs it here (local mode).
  void Post(std::function<void()> work);
  void StartThreads();
  void WorkerLoop();
  void RefresherLoop();

  std::unique_ptr<PrStateStore> store_;
  const bool cluster_ = false;
  const ClusterOptions options_;

  std::mutex op_mutex_;       // Serializes commands end to end (store write + notify).
  mutable std::mutex mutex_;  // Guards state_, version_; never held across store, notify, sinks.
  PrState state_;
  uint64_t version_ = 0;
  std::atomic<bool> unrestricted_{true};  // state_.Unrestricted(): Allows skips the lock.
  std::atomic<int64_t> confirmed_ns_{0};  // Clock time of the last confirmation.
  std::mutex sink_mutex_;
  UnitAttentionSink ua_sink_;
  AbortSink abort_sink_;
  PrCounters counters_;

  // Cluster mode threads.
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::condition_variable stop_cv_;          // Wakes the refresher on stop.
  std::deque<std::function<void()>> queue_;  // Guarded by queue_mutex_.
  struct Deferred {
    uint64_t installs;
    Clock::time_point deadline;
    std::function<void()> work;
  };
  std::vector<Deferred> deferred_;     // Guarded by queue_mutex_.
  std::atomic<uint64_t> installs_{0};  // Bumped by every Install that changed the copy.
  bool stopping_ = false;              // Guarded by queue_mutex_.
  std::thread worker_;
  std::thread refresher_;
};

}  // namespace vios::reservation
