// LocalPersistentReservations: PrEngine over a local copy of the state, written through a
// PrStateStore; the command path shared by local and cluster mode (pr_cluster_sync.cc has the
// cluster-only parts: peers, lease, worker threads).
#include "node-agent/reservation/local_persistent_reservations.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "common/log/log.h"
#include "node-agent/scsi/scsi_wire.h"

namespace vios::reservation {
namespace {

// CAS attempts per command. An agent that just lost a race must reload before it retries while
// the winner can write again at once, so a busy peer can beat it many times in a row: the
// randomized backoff below breaks that pattern, the bound turns a livelock into a retryable error.
constexpr int kMaxCasAttempts = 32;

// ConflictBackoff: 0..min(2^attempt, 64) ms, random, before reloading after a lost race.
void ConflictBackoff(int attempt) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int cap_ms = 1 << std::min(attempt, 6);
  std::uniform_int_distribution<int> us(0, cap_ms * 1000);
  std::this_thread::sleep_for(std::chrono::microseconds(us(rng)));
}

bool IsRegistrationsPreempted(const PrUnitAttention& ua) {
  return ua.asc.asc == kAscRegistrationsPreempted.asc &&
         ua.asc.ascq == kAscRegistrationsPreempted.ascq;
}

}  // namespace

LocalPersistentReservations::LocalPersistentReservations(std::unique_ptr<PrStateStore> store)
    : store_(store ? std::move(store) : std::make_unique<MemoryPrStateStore>()) {}

LocalPersistentReservations::LocalPersistentReservations(std::unique_ptr<PrStateStore> store,
                                                         ClusterOptions cluster)
    : store_(store ? std::move(store) : std::make_unique<MemoryPrStateStore>()),
      cluster_(true),
      options_(std::move(cluster)) {}

bool LocalPersistentReservations::Init(std::string* error) {
  StoredPrState stored;
  const Clock::time_point asked = Clock::now();
  if (!store_->Load(&stored, error)) {
    if (!cluster_) {
      return false;
    }
    // Cluster mode with the store unreachable (an agent restarted during an API outage): start
    // with an empty, unconfirmed copy. Allows() treats every nexus as fenced until the
    // refresher (or the peers' answers) confirm a copy, so nothing is permitted on stale state;
    // commands that never conflict (INQUIRY, REPORT LUNS, ...) are served meanwhile.
    VIOS_LOG(kWarning, "reservation state unreachable: starting unconfirmed (fenced)")
        .Field("volume", options_.volume)
        .Field("error", *error);
    StartThreads();
    return true;
  }
  PrState state = stored.state;
  if (!cluster_) {
    if (!state.aptpl) {
      // Without APTPL nothing persists through a power loss (SPC-4 §5.13.4); the generation
      // keeps counting so initiators never see an old value again.
      const uint32_t generation = state.generation;
      state = PrState{};
      state.generation = generation;
    }
    state.spc2Holder.reset();  // SPC-2 reservations never survive a restart.
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = std::move(state);
    version_ = stored.version;
    unrestricted_.store(state_.Unrestricted());
  }
  Confirm(asked);
  if (cluster_) {
    StartThreads();
  }
  return true;
}

void LocalPersistentReservations::SetUnitAttentionSink(UnitAttentionSink sink) {
  std::lock_guard<std::mutex> lock(sink_mutex_);
  ua_sink_ = std::move(sink);
}

void LocalPersistentReservations::SetAbortSink(AbortSink sink) {
  std::lock_guard<std::mutex> lock(sink_mutex_);
  abort_sink_ = std::move(sink);
}

PrState LocalPersistentReservations::State() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

uint64_t LocalPersistentReservations::Version() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return version_;
}

bool LocalPersistentReservations::Handles(uint8_t opcode) const {
  return opcode == kOpReserve6 || opcode == kOpRelease6 || opcode == kOpReserve10 ||
         opcode == kOpRelease10 || opcode == kOpPersistentReserveIn ||
         opcode == kOpPersistentReserveOut;
}

void LocalPersistentReservations::Install(const PrState& state, uint64_t version) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (version < version_) {
    return;  // A newer state arrived meanwhile (a peer's update, a refresh).
  }
  const bool changed = !(state_ == state);
  state_ = state;
  version_ = version;
  unrestricted_.store(state_.Unrestricted(), std::memory_order_release);
  if (changed && cluster_) {
    installs_.fetch_add(1, std::memory_order_acq_rel);
    // Wakes the worker for deferred commands; queue_mutex_ is never held while taking mutex_,
    // so taking it here (mutex_ held) cannot deadlock, and it orders the wake-up after the
    // worker's check of installs_.
    std::lock_guard<std::mutex> queue_lock(queue_mutex_);
    queue_cv_.notify_all();
  }
}

bool LocalPersistentReservations::Commit(const Compute& compute, uint64_t expected_version,
                                         PrResult* result, uint64_t* committed_version,
                                         Clock::time_point* committed_at, PrState* base) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    if (!result->changed) {
      return true;
    }
    uint64_t new_version = 0;
    std::string error;
    Clock::time_point asked = Clock::now();
    switch (store_->CompareAndSwap(expected_version, result->state, &new_version, &error)) {
      case CasResult::kOk:
        Install(result->state, new_version);
        Confirm(asked);
        *committed_version = new_version;
        *committed_at = Clock::now();
        return true;
      case CasResult::kConflict: {
        // Someone else wrote: recompute the command against what is stored now.
        counters_.store_conflicts.fetch_add(1, std::memory_order_relaxed);
        ConflictBackoff(attempt);
        StoredPrState stored;
        asked = Clock::now();
        if (!store_->Load(&stored, &error)) {
          counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
          VIOS_LOG(kError, "reservation state reload failed").Field("error", error);
          return false;
        }
        Install(stored.state, stored.version);
        Confirm(asked);
        expected_version = stored.version;
        *result = compute(stored.state);
        if (base != nullptr) {
          *base = stored.state;
        }
        break;
      }
      case CasResult::kError:
        counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
        VIOS_LOG(kError, "reservation state write failed").Field("error", error);
        return false;
    }
  }
  counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
  VIOS_LOG(kError, "reservation state write lost every race; answering a retryable error")
      .Field("attempts", kMaxCasAttempts);
  return false;
}

void LocalPersistentReservations::Publish(const std::vector<PrUnitAttention>& uas,
                                          const std::vector<PrPort>& aborted) {
  if (uas.empty() && aborted.empty()) {
    return;
  }
  std::lock_guard<std::mutex> lock(sink_mutex_);
  if (ua_sink_) {
    for (const PrUnitAttention& ua : uas) {
      ua_sink_(ua);
    }
  }
  if (abort_sink_) {
    for (const PrPort& port : aborted) {
      abort_sink_(port);
    }
  }
}

void LocalPersistentReservations::Execute(scsi::Task* task) {
  Post([this, task] {
    std::lock_guard<std::mutex> op(op_mutex_);
    ExecuteNow(task, /*may_defer=*/true);
  });
}

void LocalPersistentReservations::ExecuteNow(scsi::Task* task, bool may_defer) {
  if (task->nexus == nullptr || task->cdb_length == 0) {
    scsi::SetSense(task, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  const scsi::Nexus& nexus = *task->nexus;
  const std::span<const uint8_t> cdb(task->cdb.data(), task->cdb_length);
  const uint8_t opcode = cdb[0];
  if (opcode == kOpPersistentReserveOut) {
    counters_.prout_commands.fetch_add(1, std::memory_order_relaxed);
    const uint8_t action = cdb.size() > 1 ? (cdb[1] & 0x1F) : 0xFF;
    counters_.prout_by_action[std::min<size_t>(action, PrCounters::kActions - 1)].fetch_add(
        1, std::memory_order_relaxed);
  } else if (opcode == kOpPersistentReserveIn) {
    counters_.prin_commands.fetch_add(1, std::memory_order_relaxed);
  }
  if (cluster_ && !Confirmed()) {
    std::string error;
    if (!Refresh(&error) || !Confirmed()) {
      // Cut off from the store: no answer from a copy that may be stale (README.md).
      scsi::SetSense(task, scsi::SenseKey::kAbortedCommand, scsi::kAscInternalTargetFailure);
      task->Complete();
      return;
    }
  }
  PrState snapshot;
  uint64_t snapshot_version = 0;
  uint64_t installs_before = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    snapshot = state_;
    snapshot_version = version_;
    installs_before = installs_.load(std::memory_order_acquire);
  }
  uint32_t allocation_length = 0;
  PrResult result;
  if (opcode == kOpPersistentReserveIn) {
    allocation_length = cdb.size() >= 9 ? scsi::wire::Load16(&cdb[7]) : 0;
    result = PersistentReserveIn(snapshot, nexus, cdb);
  } else {
    const std::span<const uint8_t> parameters = task->data_out;
    auto compute = [&](const PrState& s) {
      return opcode == kOpPersistentReserveOut ? PersistentReserveOut(s, nexus, cdb, parameters)
                                               : Spc2ReserveRelease(s, nexus, cdb);
    };
    result = compute(snapshot);
    if (may_defer && cluster_ && (opcode == kOpReserve6 || opcode == kOpReserve10) &&
        result.status == scsi::Status::kReservationConflict && snapshot.spc2Holder.has_value()) {
      // The holder may be releasing right now on another agent (a nexus loss is processed after
      // the transport answered, e.g. after the Logout Response): give its update a moment
      // before answering RESERVATION CONFLICT. Other commands run meanwhile.
      Defer(installs_before, Clock::now() + kSpc2Grace, [this, task] {
        std::lock_guard<std::mutex> op(op_mutex_);
        ExecuteNow(task, /*may_defer=*/false);
      });
      return;
    }
    uint64_t committed_version = 0;
    Clock::time_point committed_at;
    PrState base = snapshot;
    if (!Commit(compute, snapshot_version, &result, &committed_version, &committed_at, &base)) {
      // Retryable: the initiator retries ABORTED COMMAND; the state did not change.
      scsi::SetSense(task, scsi::SenseKey::kAbortedCommand, scsi::kAscInternalTargetFailure);
      task->Complete();
      return;
    }
    if (result.changed) {
      Propagate(result, committed_version, committed_at);
      if (opcode == kOpPersistentReserveOut && cdb.size() > 1) {
        // Reported by this agent only: peers that apply the update post nothing.
        std::vector<PrEvent> events = DescribeChange(base, result.state, PrPort::FromNexus(nexus),
                                                     static_cast<ProutAction>(cdb[1] & 0x1F));
        if (!events.empty()) {
          store_->PostEvents(events);
        }
      }
    }
  }
  if (result.status == scsi::Status::kReservationConflict) {
    counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  }
  if (!result.aborted.empty() ||
      std::any_of(result.unit_attentions.begin(), result.unit_attentions.end(),
                  IsRegistrationsPreempted)) {
    counters_.preemptions.fetch_add(1, std::memory_order_relaxed);
  }
  Publish(result.unit_attentions, result.aborted);
  ApplyToTask(result, allocation_length, task);
  task->Complete();
}

void LocalPersistentReservations::ChangeSpc2(const Compute& compute, const char* what) {
  std::lock_guard<std::mutex> op(op_mutex_);
  PrState snapshot;
  uint64_t snapshot_version = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!state_.spc2Holder.has_value()) {
      return;
    }
    snapshot = state_;
    snapshot_version = version_;
  }
  PrResult result = compute(snapshot);
  uint64_t committed_version = 0;
  Clock::time_point committed_at;
  if (!Commit(compute, snapshot_version, &result, &committed_version, &committed_at)) {
    VIOS_LOG(kWarning, "could not release an SPC-2 reservation").Field("after", what);
    return;
  }
  if (result.changed) {
    Propagate(result, committed_version, committed_at);
  }
}

void LocalPersistentReservations::NexusRemoved(const scsi::Nexus& nexus) {
  if (!State().spc2Holder.has_value()) {
    return;
  }
  Post([this, nexus] {
    ChangeSpc2(
        [&nexus](const PrState& s) {
          PrResult r;
          r.state = NexusLost(s, nexus);
          r.changed = !(r.state == s);
          return r;
        },
        "nexus loss");
  });
}

void LocalPersistentReservations::Reset(scsi::TaskManagementFunction function,
                                        const scsi::Nexus& nexus) {
  (void)function;
  (void)nexus;
  if (!State().spc2Holder.has_value()) {
    return;
  }
  Post([this] {
    ChangeSpc2(
        [](const PrState& s) {
          PrResult r;
          r.state = AfterReset(s);
          r.changed = !(r.state == s);
          return r;
        },
        "reset");
  });
}

}  // namespace vios::reservation
