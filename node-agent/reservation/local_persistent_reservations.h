// LocalPersistentReservations: the in-process scsi::ReservationPolicy for one logical unit, with
// SPC-4 persistent reservations and SPC-2 RESERVE/RELEASE (PrEngine), its state behind a mutex
// and written through a PrStateStore before a command completes.
//
//   auto store = std::make_unique<FilePrStateStore>(state_dir + "/pr-" + volume + ".json");
//   auto pr = std::make_shared<LocalPersistentReservations>(std::move(store));
//   if (!pr->Init(&error)) { ... }                      // loads APTPL state
//   pr->SetUnitAttentionSink([&](const PrUnitAttention& ua) {
//     device->EstablishUnitAttention(ua.port.InitiatorPort(), ua.port.targetPort, lun, ua.asc);
//   });
//   LogicalUnit lu(&volume, config, pr.get());
//
// Unit attentions the standard requires for OTHER nexuses (RESERVATIONS PREEMPTED/RELEASED,
// REGISTRATIONS PREEMPTED) are handed to the sink, which posts them on the ScsiDevice(s) serving
// the LU. PREEMPT AND ABORT's victims go to the AbortSink (no transport API to abort yet).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_state_store.h"
#include "node-agent/scsi/reservation.h"

namespace vios::reservation {

// Counters of reservation activity, read by the agent's metrics code.
struct PrCounters {
  std::atomic<uint64_t> prout_commands{0};
  std::atomic<uint64_t> prin_commands{0};
  std::atomic<uint64_t> conflicts{0};  // RESERVATION CONFLICT answers, Allows included.
  std::atomic<uint64_t> preemptions{0};
  std::atomic<uint64_t> store_conflicts{0};  // CompareAndSwap retries.
  std::atomic<uint64_t> store_errors{0};
};

class LocalPersistentReservations final : public scsi::ReservationPolicy {
 public:
  using UnitAttentionSink = std::function<void(const PrUnitAttention&)>;
  using AbortSink = std::function<void(const PrPort&)>;

  // store may be null: a MemoryPrStateStore is used.
  explicit LocalPersistentReservations(std::unique_ptr<PrStateStore> store = nullptr);

  // Init loads the stored state. Without APTPL only the registrations' absence survives a
  // restart (SPC-4 §5.13.4: state is not preserved unless APTPL was set); SPC-2 reservations
  // never survive.
  bool Init(std::string* error);

  // Sinks are called after the state changed, outside the lock, before the command completes.
  void SetUnitAttentionSink(UnitAttentionSink sink);
  // AbortSink receives the nexuses whose tasks PREEMPT AND ABORT must abort (SPC-4 §5.13.11.4.5).
  void SetAbortSink(AbortSink sink);

  PrState State() const;
  PrCounters& counters() { return counters_; }

  // scsi::ReservationPolicy.
  bool Handles(uint8_t opcode) const override;
  bool Allows(const scsi::Nexus& nexus, const uint8_t* cdb, size_t cdb_length) override;
  void Execute(scsi::Task* task) override;
  void NexusRemoved(const scsi::Nexus& nexus) override;
  void Reset(scsi::TaskManagementFunction function, const scsi::Nexus& nexus) override;

 private:
  // Commit writes next through the store (retrying on a version conflict by recomputing with
  // compute) and installs it. Called with mutex_ held. False: store error, state unchanged.
  bool CommitLocked(const std::function<PrResult(const PrState&)>& compute, PrResult* result);
  void Publish(const PrResult& result);

  std::unique_ptr<PrStateStore> store_;
  mutable std::mutex mutex_;  // Guards state_, version_; never held while calling sinks.
  PrState state_;
  uint64_t version_ = 0;
  std::atomic<bool> unrestricted_{true};  // state_.Unrestricted(): Allows skips the lock.
  std::mutex sink_mutex_;
  UnitAttentionSink ua_sink_;
  AbortSink abort_sink_;
  PrCounters counters_;
};

}  // namespace vios::reservation
