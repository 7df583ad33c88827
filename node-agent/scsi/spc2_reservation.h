// Spc2Reservations: an in-process ReservationPolicy for SPC-2 RESERVE(6/10) / RELEASE(6/10)
// (SPC-2 §7.21, §7.16). Persistent reservations are not handled here (INVALID COMMAND OPERATION
// CODE); the cluster-wide PR policy of a later issue replaces this object.
//
//   Spc2Reservations reservations;
//   LogicalUnit lu(&volume, config, &reservations);
#pragma once

#include <mutex>
#include <optional>

#include "node-agent/scsi/reservation.h"

namespace vios::scsi {

class Spc2Reservations final : public ReservationPolicy {
 public:
  bool Handles(uint8_t opcode) const override;
  bool Allows(const Nexus& nexus, const uint8_t* cdb, size_t cdb_length) override;
  void Execute(Task* task) override;
  void NexusRemoved(const Nexus& nexus) override;
  void Reset(TaskManagementFunction function, const Nexus& nexus) override;

  // Whether some nexus holds the reservation (for tests and status).
  bool Reserved() const;

 private:
  mutable std::mutex mutex_;
  std::optional<Nexus> holder_;
};

}  // namespace vios::scsi
