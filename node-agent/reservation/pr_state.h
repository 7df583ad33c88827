// PrState: the persistent reservation state of one logical unit (SPC-4 §5.13) as a plain value,
// plus its JSON form. The JSON form becomes VIOSVolume.status.reservation (DESIGN.md §3, §7), so
// its field names are camelCase and stable:
//
//   {"generation": 3, "aptpl": false,
//    "registrations": [{"initiatorName": "iqn.a", "isid": "23d000000001",
//                       "targetPort": "iqn.t,t,0x1", "relativeTargetPort": 1,
//                       "key": "0x00000000000000ab"}],
//    "reservation": {"type": "WriteExclusiveRegistrantsOnly", "allRegistrants": false,
//                    "holder": {...port...}},          // absent when not reserved
//    "spc2Holder": {...port...}}                          // absent when no RESERVE(6/10)
//
// Reservation keys are hex strings: the Kubernetes API server's JSON numbers are int64/float64
// and a 64-bit key does not survive them.
//
//   PrState state;
//   nlohmann::json j = ToJson(state);
//   std::optional<PrState> back = PrStateFromJson(j, &error);
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node-agent/scsi/task.h"

namespace vios::reservation {

// PrType: the reservation TYPE codes of SPC-4 §6.16.2 table 170 (0 = none).
enum class PrType : uint8_t {
  kNone = 0,
  kWriteExclusive = 1,
  kExclusiveAccess = 3,
  kWriteExclusiveRegistrantsOnly = 5,
  kExclusiveAccessRegistrantsOnly = 6,
  kWriteExclusiveAllRegistrants = 7,
  kExclusiveAccessAllRegistrants = 8,
};

// IsValidType: one of the six types this model implements.
bool IsValidType(uint8_t type);
// IsAllRegistrantsType: WEAR/EAAR, where every registrant is a reservation holder (§5.13.10.3.5).
bool IsAllRegistrantsType(PrType type);
// IsRegistrantsOnlyType: WERO/EARO.
bool IsRegistrantsOnlyType(PrType type);
// IsExclusiveAccessFamily: EA, EARO, EAAR (reads conflict as well as writes).
bool IsExclusiveAccessFamily(PrType type);
std::string TypeName(PrType type);

// PrPort: one I_T nexus, by its iSCSI initiator port (name + ISID, SPC-4 §7.6.4.6) and target
// port. Identity is (initiatorPort, targetPort), the same pair ScsiDevice keys nexuses on.
struct PrPort {
  std::string initiatorName;
  std::array<uint8_t, 6> isid{};
  std::string targetPort;
  uint16_t relativeTargetPort = 1;

  // InitiatorPort: "<name>,i,0x<isid hex>", as the iSCSI layer spells Nexus::initiator_port.
  std::string InitiatorPort() const;
  // Matches: this port is the given nexus (no allocation: used on the I/O path).
  bool Matches(const scsi::Nexus& nexus) const;
  static PrPort FromNexus(const scsi::Nexus& nexus);
  bool operator==(const PrPort& other) const {
    return initiatorName == other.initiatorName && isid == other.isid &&
           targetPort == other.targetPort;
  }
};

struct Registration {
  PrPort port;
  uint64_t key = 0;
  bool operator==(const Registration&) const = default;
};

// PrState: registrations, the persistent reservation (if any), APTPL, and the SPC-2 reservation.
struct PrState {
  uint32_t generation = 0;  // PRgeneration (SPC-4 §6.15.2).
  std::vector<Registration> registrations;
  PrType type = PrType::kNone;       // kNone: no persistent reservation.
  std::optional<PrPort> holder;      // Set for every type except the all-registrants ones.
  bool aptpl = false;                // Activate persist through power loss (last REGISTER's APTPL).
  std::optional<PrPort> spc2Holder;  // SPC-2 RESERVE(6/10) holder.

  bool Reserved() const { return type != PrType::kNone; }
  // Find: the registration of a nexus, or null.
  const Registration* Find(const scsi::Nexus& nexus) const;
  Registration* Find(const scsi::Nexus& nexus);
  // IsHolder: the nexus holds the reservation (any registrant for the all-registrants types).
  bool IsHolder(const scsi::Nexus& nexus) const;
  // Unrestricted: no reservation of either kind, so every nexus may run every command
  // (registrations alone restrict nothing): Allows' lock-free fast path.
  bool Unrestricted() const { return !Reserved() && !spc2Holder.has_value(); }
  bool operator==(const PrState&) const = default;
};

nlohmann::json ToJson(const PrPort& port);
nlohmann::json ToJson(const PrState& state);
// PrStateFromJson parses what ToJson wrote; nullopt with *error set on anything malformed
// (the input may come from the API server, it must never crash the agent).
std::optional<PrState> PrStateFromJson(const nlohmann::json& json, std::string* error);

// Helpers shared by the engine and tests.
std::string FormatKey(uint64_t key);  // "0x%016x"
std::string FormatIsid(const std::array<uint8_t, 6>& isid);

}  // namespace vios::reservation
