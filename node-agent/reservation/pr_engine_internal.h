// Helpers shared by the PrEngine's files (pr_out.cc, pr_in.cc, access_rules.cc). Not public API.
#pragma once

#include "node-agent/reservation/pr_engine.h"

namespace vios::reservation::internal {

// Start: a GOOD result carrying an unchanged copy of state.
inline PrResult Start(const PrState& state) {
  PrResult r;
  r.state = state;
  return r;
}

inline PrResult Conflict(const PrState& state) {
  PrResult r = Start(state);
  r.status = scsi::Status::kReservationConflict;
  return r;
}

inline PrResult Check(const PrState& state, scsi::SenseKey key, scsi::Asc asc) {
  PrResult r = Start(state);
  r.status = scsi::Status::kCheckCondition;
  r.sense = PrSense{key, asc, false, false, 0, -1};
  return r;
}

inline PrResult InvalidField(const PrState& state, bool in_cdb, uint16_t byte, int bit = -1) {
  PrResult r = Start(state);
  r.status = scsi::Status::kCheckCondition;
  r.sense = PrSense{scsi::SenseKey::kIllegalRequest,
                    in_cdb ? scsi::kAscInvalidFieldInCdb : scsi::kAscInvalidFieldInParameterList,
                    true,
                    in_cdb,
                    byte,
                    bit};
  return r;
}

}  // namespace vios::reservation::internal
