// PERSISTENT RESERVE IN (SPC-4 §6.15): READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
// READ FULL STATUS; iSCSI TransportIDs (SPC-4 §7.6.4.6); copying a result into a Task.
#include <algorithm>
#include <cstring>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_engine_internal.h"
#include "node-agent/scsi/scsi_wire.h"

namespace vios::reservation {
namespace {

using internal::Conflict;
using internal::InvalidField;
using internal::Start;
namespace wire = scsi::wire;

void Append64(std::vector<uint8_t>* out, uint64_t v) {
  const size_t at = out->size();
  out->resize(at + 8);
  wire::Store64(out->data() + at, v);
}

uint64_t HolderKey(const PrState& s) {
  if (IsAllRegistrantsType(s.type) || !s.holder.has_value()) {
    return 0;  // All-registrants: the key field is zero (SPC-4 §6.15.3.3).
  }
  for (const Registration& reg : s.registrations) {
    if (reg.port == *s.holder) {
      return reg.key;
    }
  }
  return 0;
}

std::vector<uint8_t> ReadKeys(const PrState& s) {
  std::vector<uint8_t> out(8);
  wire::Store32(&out[0], s.generation);
  wire::Store32(&out[4], static_cast<uint32_t>(8 * s.registrations.size()));
  for (const Registration& reg : s.registrations) {
    Append64(&out, reg.key);
  }
  return out;
}

std::vector<uint8_t> ReadReservation(const PrState& s) {
  std::vector<uint8_t> out(8);
  wire::Store32(&out[0], s.generation);
  if (s.Reserved()) {
    wire::Store32(&out[4], 16);
    out.resize(24, 0);
    wire::Store64(&out[8], HolderKey(s));
    out[21] = static_cast<uint8_t>(s.type);  // SCOPE 0 (LU_SCOPE) in the high nibble.
  }
  return out;
}

// REPORT CAPABILITIES (SPC-4 §6.15.4): what this model implements.
std::vector<uint8_t> ReportCapabilities(const PrState& s) {
  std::vector<uint8_t> out(8, 0);
  wire::Store16(&out[0], 8);
  // CRH (bit 4): SPC-4 §5.13.3 compatible RESERVE/RELEASE handling; SIP_C (bit 3) = 1: REGISTER
  // with SPEC_I_PT (iSCSI TransportIDs); ATP_C (bit 2) = 1; PTPL_C (bit 0) = 1: APTPL state can
  // be persisted.
  out[2] = 0x10 | 0x08 | 0x04 | 0x01;
  // TMV (bit 7) = 1: the type mask is valid; ALLOW COMMANDS = 000b; PTPL_A (bit 0).
  out[3] = static_cast<uint8_t>(0x80 | (s.aptpl ? 0x01 : 0x00));
  // Type mask: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
  out[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
  out[5] = 0x01;
  return out;
}

std::vector<uint8_t> ReadFullStatus(const PrState& s) {
  std::vector<uint8_t> out(8);
  wire::Store32(&out[0], s.generation);
  for (const Registration& reg : s.registrations) {
    const std::vector<uint8_t> tid = EncodeIscsiTransportId(reg.port);
    const size_t at = out.size();
    out.resize(at + 24, 0);
    uint8_t* d = out.data() + at;
    wire::Store64(d, reg.key);
    bool holder = false;
    if (s.Reserved()) {
      holder = IsAllRegistrantsType(s.type) || (s.holder.has_value() && *s.holder == reg.port);
    }
    d[12] = holder ? 0x01 : 0x00;  // R_HOLDER; ALL_TG_PT (bit 1) is 0: one port.
    d[13] = holder ? static_cast<uint8_t>(s.type) : 0;
    wire::Store16(d + 18, reg.port.relativeTargetPort);
    wire::Store32(d + 20, static_cast<uint32_t>(tid.size()));
    out.insert(out.end(), tid.begin(), tid.end());
  }
  wire::Store32(&out[4], static_cast<uint32_t>(out.size() - 8));
  return out;
}

}  // namespace

PrResult PersistentReserveIn(const PrState& state, const scsi::Nexus& nexus,
                             std::span<const uint8_t> cdb) {
  if (cdb.size() < 10) {
    return InvalidField(state, true, 0);
  }
  if (state.spc2Holder.has_value() && !state.spc2Holder->Matches(nexus)) {
    return Conflict(state);  // SPC-2 §5.5.1: other nexuses may not run PR commands.
  }
  PrResult r = Start(state);
  switch (static_cast<PrinAction>(cdb[1] & 0x1F)) {
    case PrinAction::kReadKeys:
      r.data = ReadKeys(state);
      break;
    case PrinAction::kReadReservation:
      r.data = ReadReservation(state);
      break;
    case PrinAction::kReportCapabilities:
      r.data = ReportCapabilities(state);
      break;
    case PrinAction::kReadFullStatus:
      r.data = ReadFullStatus(state);
      break;
    default:
      return InvalidField(state, true, 1, 4);
  }
  return r;
}

std::vector<uint8_t> EncodeIscsiTransportId(const PrPort& port) {
  const std::string text = port.InitiatorPort();
  size_t body = text.size() + 1;  // NUL-terminated.
  body = (body + 3) & ~size_t{3};
  std::vector<uint8_t> out(4 + body, 0);
  out[0] = 0x40 | 0x05;  // FORMAT CODE 01b, PROTOCOL IDENTIFIER 5h (iSCSI).
  wire::Store16(&out[2], static_cast<uint16_t>(body));
  std::memcpy(&out[4], text.data(), text.size());
  return out;
}

std::optional<PrPort> DecodeIscsiTransportId(std::span<const uint8_t> bytes, size_t* consumed) {
  if (bytes.size() < 4 || bytes[0] != (0x40 | 0x05)) {
    return std::nullopt;
  }
  const size_t body = wire::Load16(&bytes[2]);
  if (body < 1 || bytes.size() < 4 + body) {
    return std::nullopt;
  }
  const char* text = reinterpret_cast<const char*>(&bytes[4]);
  const size_t n = strnlen(text, body);
  if (n == body) {
    return std::nullopt;  // Not NUL-terminated.
  }
  const std::string s(text, n);
  const size_t sep = s.find(",i,0x");
  if (sep == std::string::npos || sep == 0 || s.size() != sep + 5 + 12) {
    return std::nullopt;
  }
  PrPort port;
  port.initiatorName = s.substr(0, sep);
  for (size_t i = 0; i < 6; ++i) {
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = s[sep + 5 + 2 * i + k];
      unsigned d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
      v = (v << 4) | d;
    }
    port.isid[i] = static_cast<uint8_t>(v);
  }
  *consumed = 4 + body;
  return port;
}

void ApplyToTask(const PrResult& result, uint32_t allocation_length, scsi::Task* task) {
  if (result.status == scsi::Status::kCheckCondition && result.sense.has_value()) {
    const PrSense& s = *result.sense;
    if (s.has_field_pointer) {
      scsi::SetInvalidField(task, s.in_cdb, s.byte, s.bit);
    } else {
      scsi::SetSense(task, s.key, s.asc);
    }
    return;
  }
  if (result.status != scsi::Status::kGood) {
    task->status = result.status;
    task->sense_length = 0;
    return;
  }
  const size_t n = std::min<size_t>({result.data.size(), allocation_length, task->data_in.size()});
  if (n != 0) {
    std::memcpy(task->data_in.data(), result.data.data(), n);
  }
  task->data_in_length = static_cast<uint32_t>(n);
  task->SetGood();
}

}  // namespace vios::reservation
