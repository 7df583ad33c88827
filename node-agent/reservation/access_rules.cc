// Which commands a nexus may run under the current reservations: the one access table (SPC-4
// §5.13.1 table 52 for SPC commands, SBC-3 §4.17 table 13 for block commands), SPC-2
// RESERVE/RELEASE (SPC-2 §5.5.1, §7.16, §7.21) and their coexistence with persistent
// reservations (SPC-4 §5.13.3, CRH = 1).
#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_engine_internal.h"

namespace vios::reservation {
namespace {

using internal::Conflict;
using internal::Start;

// Access: how a command is treated under a persistent reservation it does not hold.
enum class Access : uint8_t {
  kAllowed,  // Allowed from every nexus (identification, status, capacity).
  kRead,     // Reads the medium: allowed under Write Exclusive types, conflicts under Exclusive
             // Access types for nexuses without access.
  kWrite,    // Modifies the medium or LU state: conflicts for nexuses without access.
};

struct AccessRule {
  uint8_t opcode;
  Access access;
};

// The table. Opcodes not listed are kWrite: a command we forgot to list is fenced, never
// let through (a fenced initiator must not corrupt the volume).
constexpr AccessRule kAccessRules[] = {
    {0x00, Access::kAllowed},  // TEST UNIT READY
    {0x03, Access::kAllowed},  // REQUEST SENSE
    {0x12, Access::kAllowed},  // INQUIRY
    {0x25, Access::kAllowed},  // READ CAPACITY(10)
    {0x4D, Access::kAllowed},  // LOG SENSE
    {0x5E, Access::kAllowed},  // PERSISTENT RESERVE IN
    {0xA0, Access::kAllowed},  // REPORT LUNS
    {0xA3, Access::kAllowed},  // MAINTENANCE IN (REPORT SUPPORTED OPCODES / TMFs / TPGs)
    {0x08, Access::kRead},     // READ(6)
    {0x28, Access::kRead},     // READ(10)
    {0xA8, Access::kRead},     // READ(12)
    {0x88, Access::kRead},     // READ(16)
    {0x2F, Access::kRead},     // VERIFY(10)
    {0xAF, Access::kRead},     // VERIFY(12)
    {0x8F, Access::kRead},     // VERIFY(16)
    {0x34, Access::kRead},     // PRE-FETCH(10)
    {0x90, Access::kRead},     // PRE-FETCH(16)
    {0x1A, Access::kRead},     // MODE SENSE(6)
    {0x5A, Access::kRead},     // MODE SENSE(10)
};

Access Classify(std::span<const uint8_t> cdb) {
  const uint8_t opcode = cdb[0];
  if (opcode == 0x9E && cdb.size() > 1) {
    // SERVICE ACTION IN(16): READ CAPACITY(16) is allowed, GET LBA STATUS reads.
    return (cdb[1] & 0x1F) == 0x10 ? Access::kAllowed : Access::kRead;
  }
  if (opcode == 0x1B && cdb.size() > 4) {
    // START STOP UNIT with START = 1 and POWER CONDITION = 0 is allowed (SBC-3 table 13).
    return (cdb[4] & 0xF1) == 0x01 ? Access::kAllowed : Access::kWrite;
  }
  if (opcode == 0x1E && cdb.size() > 4) {
    // PREVENT ALLOW MEDIUM REMOVAL with PREVENT = 0 is allowed.
    return (cdb[4] & 0x03) == 0 ? Access::kAllowed : Access::kWrite;
  }
  for (const AccessRule& rule : kAccessRules) {
    if (rule.opcode == opcode) {
      return rule.access;
    }
  }
  return Access::kWrite;
}

// Under an SPC-2 reservation of another nexus (SPC-2 §5.5.1) only these run.
bool AllowedUnderSpc2(uint8_t opcode) {
  switch (opcode) {
    case 0x12:  // INQUIRY
    case 0x03:  // REQUEST SENSE
    case 0xA0:  // REPORT LUNS
    case 0xA3:  // MAINTENANCE IN
      return true;
    default:
      return false;
  }
}

}  // namespace

bool Allows(const PrState& state, const scsi::Nexus& nexus, std::span<const uint8_t> cdb) {
  if (cdb.empty()) {
    return true;
  }
  if (state.spc2Holder.has_value() && !state.spc2Holder->Matches(nexus)) {
    return AllowedUnderSpc2(cdb[0]);
  }
  if (!state.Reserved() || state.IsHolder(nexus)) {
    return true;  // Registrations alone restrict nothing (SPC-4 §5.13.1).
  }
  const Access access = Classify(cdb);
  if (access == Access::kAllowed) {
    return true;
  }
  const bool registered = state.Find(nexus) != nullptr;
  switch (state.type) {
    case PrType::kWriteExclusive:
      return access == Access::kRead;
    case PrType::kExclusiveAccess:
      return false;
    case PrType::kWriteExclusiveRegistrantsOnly:
    case PrType::kWriteExclusiveAllRegistrants:
      return registered || access == Access::kRead;
    case PrType::kExclusiveAccessRegistrantsOnly:
    case PrType::kExclusiveAccessAllRegistrants:
      return registered;
    case PrType::kNone:
      break;
  }
  return true;
}

PrResult Spc2ReserveRelease(const PrState& state, const scsi::Nexus& nexus,
                            std::span<const uint8_t> cdb) {
  if (cdb.empty()) {
    return internal::InvalidField(state, true, 0);
  }
  const bool reserve = cdb[0] == kOpReserve6 || cdb[0] == kOpReserve10;
  PrResult r = Start(state);
  // SPC-4 §5.13.3 with CRH = 1: a persistent reservation holder's RESERVE/RELEASE succeed and
  // change nothing; anyone else conflicts while persistent reservations or registrations exist.
  if (state.Reserved()) {
    return state.IsHolder(nexus) ? r : Conflict(state);
  }
  if (!state.registrations.empty()) {
    if (!reserve && state.Find(nexus) != nullptr) {
      return r;
    }
    return Conflict(state);
  }
  const bool held_by_other = state.spc2Holder.has_value() && !state.spc2Holder->Matches(nexus);
  if (reserve) {
    if (held_by_other) {
      return Conflict(state);
    }
    if (!state.spc2Holder.has_value()) {
      r.state.spc2Holder = PrPort::FromNexus(nexus);
      r.changed = true;
    }
    return r;
  }
  // RELEASE by a non-holder is GOOD and changes nothing (SPC-2 §7.16).
  if (state.spc2Holder.has_value() && !held_by_other) {
    r.state.spc2Holder.reset();
    r.changed = true;
  }
  return r;
}

PrState NexusLost(const PrState& state, const scsi::Nexus& nexus) {
  PrState next = state;
  if (next.spc2Holder.has_value() && next.spc2Holder->Matches(nexus)) {
    next.spc2Holder.reset();
  }
  return next;
}

PrState AfterReset(const PrState& state) {
  PrState next = state;
  next.spc2Holder.reset();
  return next;
}

}  // namespace vios::reservation
