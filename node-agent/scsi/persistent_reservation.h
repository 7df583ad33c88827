// PersistentReservations: an in-process ReservationPolicy implementing SPC-4 persistent
// reservations (§5.13, PERSISTENT RESERVE IN/OUT §6.15/§6.16) for one logical unit, plus SPC-2
// RESERVE/RELEASE through an embedded Spc2Reservations.
//
// State lives in this object only (one agent). The cluster-wide policy of DESIGN.md §7 replaces it
// with state in VIOSVolume.status.reservation; the command semantics here are the reference for it.
// Supported: REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT,
// PREEMPT AND ABORT (the transport aborts tasks), READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
// READ FULL STATUS; all six reservation types, LU scope. Not supported (reported as such in REPORT
// CAPABILITIES): APTPL, SPEC_I_PT, ALL_TG_PT, REGISTER AND MOVE.
//
//   PersistentReservations pr;
//   LogicalUnit lu(&volume, config, &pr);
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "node-agent/scsi/reservation.h"
#include "node-agent/scsi/spc2_reservation.h"

namespace vios::scsi {

class PersistentReservations final : public ReservationPolicy {
 public:
  bool Handles(uint8_t opcode) const override;
  bool Allows(const Nexus& nexus, const uint8_t* cdb, size_t cdb_length) override;
  void Execute(Task* task) override;
  void NexusRemoved(const Nexus& nexus) override;
  void Reset(TaskManagementFunction function, const Nexus& nexus) override;

  // For tests and status.
  uint32_t generation() const;
  size_t registrations() const;

 private:
  struct Registration {
    Nexus nexus;
    uint64_t key;
  };
  struct Reservation {
    Nexus holder;
    uint8_t type;
  };

  void In(Task* task);
  void Out(Task* task);
  Registration* FindLocked(const Nexus& nexus);
  bool AllRegistrantsType() const;
  bool IsHolderLocked(const Nexus& nexus);
  void RemoveLocked(const Nexus& nexus);

  Spc2Reservations spc2_;
  mutable std::mutex mutex_;
  uint32_t generation_ = 0;
  std::vector<Registration> registrations_;
  std::optional<Reservation> reservation_;
};

}  // namespace vios::scsi
