// PERSISTENT RESERVE OUT (SPC-4 §6.16) and the reservation model behind it (SPC-4 §5.13.7 -
// §5.13.11): REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT,
// PREEMPT AND ABORT, REGISTER AND MOVE.
#include <algorithm>
#include <optional>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_engine_internal.h"
#include "node-agent/scsi/scsi_wire.h"

namespace vios::reservation {
namespace {

using internal::Check;
using internal::Conflict;
using internal::InvalidField;
using internal::Start;
using scsi::SenseKey;
namespace wire = scsi::wire;

constexpr size_t kBasicParameterListLength = 24;  // SPC-4 §6.16.3 table 172.

struct ProutCommand {
  ProutAction action;
  uint8_t scope;
  uint8_t type;
  uint64_t key;
  uint64_t sa_key;
  bool aptpl;
  bool spec_i_pt;
  std::span<const uint8_t> parameters;
};

PrResult LengthError(const PrState& state) {
  return Check(state, SenseKey::kIllegalRequest, scsi::kAscParameterListLengthError);
}

// Every OTHER registered nexus, for unit attentions (SPC-4 §5.13.11).
void NotifyOthers(PrResult* r, const scsi::Nexus& nexus, scsi::Asc asc) {
  for (const Registration& reg : r->state.registrations) {
    if (!reg.port.Matches(nexus)) {
      r->unit_attentions.push_back(PrUnitAttention{reg.port, asc});
    }
  }
}

void ReleaseReservation(PrState* s) {
  s->type = PrType::kNone;
  s->holder.reset();
}

void SetReservation(PrState* s, PrType type, const PrPort& holder) {
  s->type = type;
  if (IsAllRegistrantsType(type)) {
    s->holder.reset();
  } else {
    s->holder = holder;
  }
}

// RemoveWithKey removes the registrations with key (except the caller's), returning the
// removed ports; *matched counts matching registrations including the caller's.
std::vector<PrPort> RemoveWithKey(PrState* s, const scsi::Nexus& caller, uint64_t key, bool any_key,
                                  size_t* matched) {
  std::vector<PrPort> removed;
  *matched = 0;
  std::vector<Registration> kept;
  for (Registration& reg : s->registrations) {
    const bool match = any_key || reg.key == key;
    if (match) {
      ++*matched;
    }
    if (match && !reg.port.Matches(caller)) {
      removed.push_back(reg.port);
    } else {
      kept.push_back(std::move(reg));
    }
  }
  s->registrations = std::move(kept);
  return removed;
}

// Unregister removes nexus's registration and applies §5.13.11.2.3: the holder's reservation
// (of a non all-registrants type) goes with it; the last registrant takes an all-registrants
// reservation with it; registrants-only releases tell the other registrants.
void Unregister(PrResult* r, const scsi::Nexus& nexus) {
  PrState& s = r->state;
  std::erase_if(s.registrations, [&](const Registration& reg) { return reg.port.Matches(nexus); });
  if (!s.Reserved()) {
    return;
  }
  if (IsAllRegistrantsType(s.type)) {
    if (s.registrations.empty()) {
      ReleaseReservation(&s);
    }
    return;
  }
  if (s.holder.has_value() && s.holder->Matches(nexus)) {
    const PrType old = s.type;
    ReleaseReservation(&s);
    if (IsRegistrantsOnlyType(old)) {
      NotifyOthers(r, nexus, scsi::kAscReservationsReleased);
    }
  }
}

// SpecifiedPorts decodes the TransportIDs of a REGISTER with SPEC_I_PT (SPC-4 §6.16.3: a
// TRANSPORTID PARAMETER DATA LENGTH at byte 24, then the TransportIDs) into I_T nexuses on the
// receiving target port. nullopt with *error set: the command fails with it.
std::optional<std::vector<PrPort>> SpecifiedPorts(const PrState& state, const scsi::Nexus& nexus,
                                                  const ProutCommand& c, PrResult* error) {
  std::span<const uint8_t> p = c.parameters;
  if (p.size() < kBasicParameterListLength + 4 ||
      p.size() != kBasicParameterListLength + 4 + wire::Load32(&p[kBasicParameterListLength])) {
    *error = LengthError(state);
    return std::nullopt;
  }
  std::vector<PrPort> ports;
  size_t offset = kBasicParameterListLength + 4;
  while (offset < p.size()) {
    size_t consumed = 0;
    std::optional<PrPort> port = DecodeIscsiTransportId(p.subspan(offset), &consumed);
    if (!port.has_value() || consumed == 0) {
      *error = InvalidField(state, false, static_cast<uint16_t>(offset));
      return std::nullopt;
    }
    port->targetPort = nexus.target_port;  // The port the command came in on (ATP_C: one port).
    port->relativeTargetPort = nexus.relative_target_port;
    const bool self = port->Matches(nexus);
    const bool duplicate = std::find(ports.begin(), ports.end(), *port) != ports.end();
    if (!self && !duplicate) {
      // A specified nexus that is already registered fails the whole command (SPC-4 §5.13.7).
      for (const Registration& reg : state.registrations) {
        if (reg.port == *port) {
          *error = InvalidField(state, false, static_cast<uint16_t>(offset));
          return std::nullopt;
        }
      }
      ports.push_back(std::move(*port));
    }
    offset += consumed;
  }
  return ports;
}

PrResult Register(const PrState& state, const scsi::Nexus& nexus, const ProutCommand& c) {
  const bool ignore = c.action == ProutAction::kRegisterAndIgnoreExistingKey;
  PrResult r = Start(state);
  Registration* reg = r.state.Find(nexus);
  if (reg == nullptr) {
    if (!ignore && c.key != 0) {
      return Conflict(state);
    }
    if (c.sa_key == 0) {
      return r;  // Nothing to register: GOOD, no change (SPC-4 §5.13.7).
    }
    std::vector<PrPort> specified;
    if (c.spec_i_pt) {
      PrResult error;
      std::optional<std::vector<PrPort>> ports = SpecifiedPorts(state, nexus, c, &error);
      if (!ports.has_value()) {
        return error;
      }
      specified = std::move(*ports);
    }
    // All or nothing: the issuing nexus and every specified one get the key.
    if (r.state.registrations.size() + 1 + specified.size() > kMaxRegistrations) {
      return Check(state, SenseKey::kIllegalRequest, kAscInsufficientRegistrationResources);
    }
    r.state.registrations.push_back(Registration{PrPort::FromNexus(nexus), c.sa_key});
    for (PrPort& port : specified) {
      r.state.registrations.push_back(Registration{std::move(port), c.sa_key});
    }
  } else {
    if (!ignore && c.key != reg->key) {
      return Conflict(state);
    }
    if (c.spec_i_pt) {
      return InvalidField(state, false, 20, 3);  // SPEC_I_PT on a registered nexus.
    }
    if (c.sa_key == 0) {
      Unregister(&r, nexus);
    } else {
      reg->key = c.sa_key;
    }
  }
  r.state.aptpl = c.aptpl;
  ++r.state.generation;
  r.changed = true;
  return r;
}

PrResult Reserve(const PrState& state, const scsi::Nexus& nexus, const ProutCommand& c) {
  PrResult r = Start(state);
  const PrType type = static_cast<PrType>(c.type);
  if (state.Reserved()) {
    // The holder may repeat its own reservation; anything else conflicts (SPC-4 §5.13.9).
    if (state.IsHolder(nexus) && state.type == type) {
      return r;
    }
    return Conflict(state);
  }
  SetReservation(&r.state, type, PrPort::FromNexus(nexus));
  r.changed = true;
  return r;
}

PrResult Release(const PrState& state, const scsi::Nexus& nexus, const ProutCommand& c) {
  PrResult r = Start(state);
  if (!state.Reserved() || !state.IsHolder(nexus)) {
    return r;  // GOOD, nothing released (SPC-4 §5.13.11.2.2).
  }
  if (c.scope != 0 || c.type != static_cast<uint8_t>(state.type)) {
    return Check(state, SenseKey::kIllegalRequest, kAscInvalidReleaseOfPersistentReservation);
  }
  const PrType old = state.type;
  ReleaseReservation(&r.state);
  if (IsRegistrantsOnlyType(old) || IsAllRegistrantsType(old)) {
    NotifyOthers(&r, nexus, scsi::kAscReservationsReleased);
  }
  r.changed = true;
  return r;
}

PrResult Clear(const PrState& state, const scsi::Nexus& nexus) {
  PrResult r = Start(state);
  NotifyOthers(&r, nexus, kAscReservationsPreempted);  // SPC-4 §5.13.11.2.7.
  r.state.registrations.clear();
  ReleaseReservation(&r.state);
  ++r.state.generation;
  r.changed = true;
  return r;
}

PrResult Preempt(const PrState& state, const scsi::Nexus& nexus, const ProutCommand& c) {
  PrResult r = Start(state);
  const PrType type = static_cast<PrType>(c.type);
  const PrPort caller = PrPort::FromNexus(nexus);
  size_t matched = 0;
  std::vector<PrPort> removed;
  bool take_reservation = false;
  if (state.Reserved() && IsAllRegistrantsType(state.type) && c.sa_key == 0) {
    // All-registrants reservation preempted as a whole (SPC-4 §5.13.11.4.4).
    removed = RemoveWithKey(&r.state, nexus, 0, true, &matched);
    take_reservation = true;
  } else {
    if (c.sa_key == 0) {
      return InvalidField(state, false, 8);
    }
    const Registration* holder_reg = nullptr;
    if (state.Reserved() && !IsAllRegistrantsType(state.type) && state.holder.has_value()) {
      for (const Registration& reg : state.registrations) {
        if (reg.port == *state.holder) {
          holder_reg = &reg;
        }
      }
    }
    take_reservation = holder_reg != nullptr && holder_reg->key == c.sa_key;
    removed = RemoveWithKey(&r.state, nexus, c.sa_key, false, &matched);
    if (matched == 0) {
      return Conflict(state);  // No registration with that key (SPC-4 §5.13.11.4.2).
    }
  }
  for (const PrPort& port : removed) {
    r.unit_attentions.push_back(PrUnitAttention{port, kAscRegistrationsPreempted});
  }
  if (take_reservation) {
    const bool changed_type = state.type != type;
    SetReservation(&r.state, type, caller);
    if (changed_type) {
      // Remaining registrants learn that the reservation they lived under is gone (§5.13.11.4.3).
      NotifyOthers(&r, nexus, scsi::kAscReservationsReleased);
    }
  }
  if (c.action == ProutAction::kPreemptAndAbort) {
    r.aborted = removed;
  }
  ++r.state.generation;
  r.changed = true;
  return r;
}

PrResult RegisterAndMove(const PrState& state, const scsi::Nexus& nexus, const ProutCommand& c) {
  const std::span<const uint8_t> p = c.parameters;
  const bool unreg = (p[17] & 0x02) != 0;
  const uint16_t relative_port = wire::Load16(&p[18]);
  const uint32_t tid_length = wire::Load32(&p[20]);
  if (static_cast<uint64_t>(p.size()) < kBasicParameterListLength + uint64_t{tid_length}) {
    return LengthError(state);
  }
  if (!state.Reserved() || !state.IsHolder(nexus) || IsAllRegistrantsType(state.type)) {
    return Conflict(state);  // SPC-4 §5.13.8: only a single holder can move its reservation.
  }
  if (c.sa_key == 0) {
    return InvalidField(state, false, 8);
  }
  size_t consumed = 0;
  std::optional<PrPort> dest =
      DecodeIscsiTransportId(p.subspan(kBasicParameterListLength, tid_length), &consumed);
  if (!dest.has_value()) {
    return InvalidField(state, false, kBasicParameterListLength);
  }
  // One virtual port is one target port: the destination must be behind this nexus's port.
  if (relative_port != nexus.relative_target_port) {
    return InvalidField(state, false, 18);
  }
  dest->targetPort = nexus.target_port;
  dest->relativeTargetPort = relative_port;
  if (PrPort::FromNexus(nexus) == *dest) {
    return InvalidField(state, false, kBasicParameterListLength);
  }
  PrResult r = Start(state);
  bool dest_registered = false;
  for (const Registration& reg : r.state.registrations) {
    dest_registered = dest_registered || reg.port == *dest;
  }
  if (!dest_registered) {
    if (r.state.registrations.size() >= kMaxRegistrations) {
      return Check(state, SenseKey::kIllegalRequest, kAscInsufficientRegistrationResources);
    }
    r.state.registrations.push_back(Registration{*dest, c.sa_key});
  }
  SetReservation(&r.state, static_cast<PrType>(c.type), *dest);
  if (unreg) {
    std::erase_if(r.state.registrations,
                  [&](const Registration& reg) { return reg.port.Matches(nexus); });
  }
  r.state.aptpl = c.aptpl;
  ++r.state.generation;
  r.changed = true;
  return r;
}

}  // namespace

PrResult PersistentReserveOut(const PrState& state, const scsi::Nexus& nexus,
                              std::span<const uint8_t> cdb, std::span<const uint8_t> parameters) {
  if (cdb.size() < 10) {
    return InvalidField(state, true, 0);
  }
  const uint8_t sa = cdb[1] & 0x1F;
  if (sa > static_cast<uint8_t>(ProutAction::kRegisterAndMove)) {
    return InvalidField(state, true, 1, 4);
  }
  ProutCommand c{};
  c.action = static_cast<ProutAction>(sa);
  c.scope = cdb[2] >> 4;
  c.type = cdb[2] & 0x0F;
  const uint32_t length = wire::Load32(&cdb[5]);
  // An SPC-2 reservation of another nexus conflicts with PR commands (SPC-2 §5.5.1).
  if (state.spc2Holder.has_value() && !state.spc2Holder->Matches(nexus)) {
    return Conflict(state);
  }
  // Parameter list (SPC-4 §6.16.3, §6.16.4): exactly 24 bytes except for REGISTER with
  // SPEC_I_PT (24 + 4 + TransportIDs) and for REGISTER AND MOVE (24 plus a TransportID).
  if (length < kBasicParameterListLength || parameters.size() < length) {
    return LengthError(state);
  }
  parameters = parameters.first(length);
  const bool move = c.action == ProutAction::kRegisterAndMove;
  c.spec_i_pt = !move && (parameters[20] & 0x08) != 0;
  if (c.spec_i_pt && c.action != ProutAction::kRegister) {
    return InvalidField(state, false, 20, 3);  // SPEC_I_PT is for REGISTER only.
  }
  if (!move && !c.spec_i_pt && length != kBasicParameterListLength) {
    return LengthError(state);
  }
  c.key = wire::Load64(&parameters[0]);
  c.sa_key = wire::Load64(&parameters[8]);
  c.aptpl = move ? (parameters[17] & 0x01) != 0 : (parameters[20] & 0x01) != 0;
  c.parameters = parameters;
  // ALL_TG_PT (byte 20 bit 2) is accepted: a virtual port is a target device with one port, so
  // "all target ports" is this one (ATP_C = 1).
  const bool needs_type = c.action == ProutAction::kReserve || c.action == ProutAction::kPreempt ||
                          c.action == ProutAction::kPreemptAndAbort || move;
  if (needs_type) {
    if (c.scope != 0) {
      return InvalidField(state, true, 2, 7);  // Only LU_SCOPE (SPC-4 §6.16.2).
    }
    if (!IsValidType(c.type)) {
      return InvalidField(state, true, 2, 3);
    }
  }
  const bool registering =
      c.action == ProutAction::kRegister || c.action == ProutAction::kRegisterAndIgnoreExistingKey;
  if (registering) {
    return Register(state, nexus, c);
  }
  // Every other action needs a registered nexus presenting its own key (SPC-4 §5.13.11.1).
  const Registration* reg = state.Find(nexus);
  if (reg == nullptr || reg->key != c.key) {
    return Conflict(state);
  }
  switch (c.action) {
    case ProutAction::kReserve:
      return Reserve(state, nexus, c);
    case ProutAction::kRelease:
      return Release(state, nexus, c);
    case ProutAction::kClear:
      return Clear(state, nexus);
    case ProutAction::kPreempt:
    case ProutAction::kPreemptAndAbort:
      return Preempt(state, nexus, c);
    case ProutAction::kRegisterAndMove:
      return RegisterAndMove(state, nexus, c);
    default:
      break;
  }
  return InvalidField(state, true, 1, 4);
}

}  // namespace vios::reservation
