// LocalPersistentReservations: PrEngine behind a mutex, state written through a PrStateStore.
#include "node-agent/reservation/local_persistent_reservations.h"

#include <algorithm>

#include "common/log/log.h"
#include "node-agent/scsi/scsi_wire.h"

namespace vios::reservation {
namespace {

constexpr int kMaxCasAttempts = 8;

}  // namespace

LocalPersistentReservations::LocalPersistentReservations(std::unique_ptr<PrStateStore> store)
    : store_(store ? std::move(store) : std::make_unique<MemoryPrStateStore>()) {}

bool LocalPersistentReservations::Init(std::string* error) {
  StoredPrState stored;
  if (!store_->Load(&stored, error)) {
    return false;
  }
  PrState state = stored.state;
  if (!state.aptpl) {
    // Without APTPL nothing persists through a power loss (SPC-4 §5.13.4); the generation
    // keeps counting so initiators never see an old value again.
    const uint32_t generation = state.generation;
    state = PrState{};
    state.generation = generation;
  }
  state.spc2Holder.reset();  // SPC-2 reservations never survive a restart.
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = std::move(state);
  version_ = stored.version;
  unrestricted_.store(state_.Unrestricted());
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

bool LocalPersistentReservations::Handles(uint8_t opcode) const {
  return opcode == kOpReserve6 || opcode == kOpRelease6 || opcode == kOpReserve10 ||
         opcode == kOpRelease10 || opcode == kOpPersistentReserveIn ||
         opcode == kOpPersistentReserveOut;
}

bool LocalPersistentReservations::Allows(const scsi::Nexus& nexus, const uint8_t* cdb,
                                         size_t cdb_length) {
  if (unrestricted_.load(std::memory_order_acquire)) {
    return true;
  }
  bool allowed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    allowed = reservation::Allows(state_, nexus, std::span<const uint8_t>(cdb, cdb_length));
  }
  if (!allowed) {
    counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  }
  return allowed;
}

bool LocalPersistentReservations::CommitLocked(
    const std::function<PrResult(const PrState&)>& compute, PrResult* result) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    if (!result->changed) {
      return true;
    }
    uint64_t new_version = 0;
    std::string error;
    switch (store_->CompareAndSwap(version_, result->state, &new_version, &error)) {
      case CasResult::kOk:
        state_ = result->state;
        version_ = new_version;
        unrestricted_.store(state_.Unrestricted(), std::memory_order_release);
        return true;
      case CasResult::kConflict: {
        // Someone else wrote: recompute the command against what is stored now.
        counters_.store_conflicts.fetch_add(1, std::memory_order_relaxed);
        StoredPrState stored;
        if (!store_->Load(&stored, &error)) {
          counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
          VIOS_LOG(kError, "reservation state reload failed").Field("error", error);
          return false;
        }
        state_ = stored.state;
        version_ = stored.version;
        unrestricted_.store(state_.Unrestricted(), std::memory_order_release);
        *result = compute(state_);
        break;
      }
      case CasResult::kError:
        counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
        VIOS_LOG(kError, "reservation state write failed").Field("error", error);
        return false;
    }
  }
  counters_.store_errors.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void LocalPersistentReservations::Publish(const PrResult& result) {
  if (result.unit_attentions.empty() && result.aborted.empty()) {
    return;
  }
  std::lock_guard<std::mutex> lock(sink_mutex_);
  if (ua_sink_) {
    for (const PrUnitAttention& ua : result.unit_attentions) {
      ua_sink_(ua);
    }
  }
  if (abort_sink_) {
    for (const PrPort& port : result.aborted) {
      abort_sink_(port);
    }
  }
}

void LocalPersistentReservations::Execute(scsi::Task* task) {
  if (task->nexus == nullptr || task->cdb_length == 0) {
    scsi::SetSense(task, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidCommandOperationCode);
    task->Complete();
    return;
  }
  const scsi::Nexus& nexus = *task->nexus;
  const std::span<const uint8_t> cdb(task->cdb.data(), task->cdb_length);
  const uint8_t opcode = cdb[0];
  uint32_t allocation_length = 0;
  PrResult result;
  bool store_failed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (opcode == kOpPersistentReserveIn) {
      counters_.prin_commands.fetch_add(1, std::memory_order_relaxed);
      allocation_length = cdb.size() >= 9 ? scsi::wire::Load16(&cdb[7]) : 0;
      result = PersistentReserveIn(state_, nexus, cdb);
    } else {
      const std::span<const uint8_t> parameters = task->data_out;
      auto compute = [&](const PrState& s) {
        return opcode == kOpPersistentReserveOut ? PersistentReserveOut(s, nexus, cdb, parameters)
                                                 : Spc2ReserveRelease(s, nexus, cdb);
      };
      if (opcode == kOpPersistentReserveOut) {
        counters_.prout_commands.fetch_add(1, std::memory_order_relaxed);
      }
      result = compute(state_);
      store_failed = !CommitLocked(compute, &result);
    }
  }
  if (store_failed) {
    // Retryable: the initiator retries ABORTED COMMAND; the state did not change.
    scsi::SetSense(task, scsi::SenseKey::kAbortedCommand, scsi::kAscInternalTargetFailure);
    task->Complete();
    return;
  }
  if (result.status == scsi::Status::kReservationConflict) {
    counters_.conflicts.fetch_add(1, std::memory_order_relaxed);
  }
  if (!result.aborted.empty() ||
      std::any_of(result.unit_attentions.begin(), result.unit_attentions.end(),
                  [](const PrUnitAttention& ua) {
                    return ua.asc.asc == kAscRegistrationsPreempted.asc &&
                           ua.asc.ascq == kAscRegistrationsPreempted.ascq;
                  })) {
    counters_.preemptions.fetch_add(1, std::memory_order_relaxed);
  }
  Publish(result);
  ApplyToTask(result, allocation_length, task);
  task->Complete();
}

void LocalPersistentReservations::NexusRemoved(const scsi::Nexus& nexus) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!state_.spc2Holder.has_value()) {
    return;
  }
  auto compute = [&](const PrState& s) {
    PrResult r;
    r.state = NexusLost(s, nexus);
    r.changed = !(r.state == s);
    return r;
  };
  PrResult result = compute(state_);
  if (!CommitLocked(compute, &result)) {
    VIOS_LOG(kWarning, "could not release SPC-2 reservation of a lost nexus")
        .Field("initiator_port", nexus.initiator_port);
  }
}

void LocalPersistentReservations::Reset(scsi::TaskManagementFunction function,
                                        const scsi::Nexus& nexus) {
  (void)function;
  (void)nexus;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!state_.spc2Holder.has_value()) {
    return;
  }
  auto compute = [](const PrState& s) {
    PrResult r;
    r.state = AfterReset(s);
    r.changed = !(r.state == s);
    return r;
  };
  PrResult result = compute(state_);
  if (!CommitLocked(compute, &result)) {
    VIOS_LOG(kWarning, "could not release SPC-2 reservation after reset");
  }
}

}  // namespace vios::reservation
