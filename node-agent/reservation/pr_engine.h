// PrEngine: the SPC-4 persistent reservation model (SPC-4 §5.13, §6.15, §6.16) and the SPC-2
// RESERVE/RELEASE interaction rules as pure functions over PrState. No I/O, no locks, no clock:
// the same input gives the same output, so the in-process policy, the cluster policy (state in
// VIOSVolume.status.reservation, recomputed on a resourceVersion conflict) and the model tests
// all run this one code.
//
//   PrResult r = PersistentReserveOut(state, nexus, cdb, parameter_list);
//   if (r.changed) state = r.state;       // after the store accepted it
//   for (auto& ua : r.unit_attentions) post(ua.port, ua.asc);
//   ApplyToTask(r, task);                 // status, sense, Data-In
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "node-agent/reservation/pr_state.h"
#include "node-agent/scsi/sense.h"
#include "node-agent/scsi/task.h"

namespace vios::reservation {

inline constexpr uint8_t kOpReserve6 = 0x16;
inline constexpr uint8_t kOpRelease6 = 0x17;
inline constexpr uint8_t kOpReserve10 = 0x56;
inline constexpr uint8_t kOpRelease10 = 0x57;
inline constexpr uint8_t kOpPersistentReserveIn = 0x5E;
inline constexpr uint8_t kOpPersistentReserveOut = 0x5F;

// PR OUT service actions (SPC-4 §6.16.2 table 169).
enum class ProutAction : uint8_t {
  kRegister = 0,
  kReserve = 1,
  kRelease = 2,
  kClear = 3,
  kPreempt = 4,
  kPreemptAndAbort = 5,
  kRegisterAndIgnoreExistingKey = 6,
  kRegisterAndMove = 7,
};

// PR IN service actions (SPC-4 §6.15.1 table 160).
enum class PrinAction : uint8_t {
  kReadKeys = 0,
  kReadReservation = 1,
  kReportCapabilities = 2,
  kReadFullStatus = 3,
};

// Additional sense codes specific to reservations (SPC-4 Annex D).
inline constexpr scsi::Asc kAscReservationsPreempted{0x2A, 0x03};
inline constexpr scsi::Asc kAscRegistrationsPreempted{0x2A, 0x05};
inline constexpr scsi::Asc kAscInvalidReleaseOfPersistentReservation{0x26, 0x04};
inline constexpr scsi::Asc kAscInsufficientRegistrationResources{0x55, 0x04};

// Most registrations one LU keeps (INSUFFICIENT REGISTRATION RESOURCES beyond it): bounds the
// state object stored in the API server.
inline constexpr size_t kMaxRegistrations = 128;

// PrSense: the CHECK CONDITION a command ends with.
struct PrSense {
  scsi::SenseKey key = scsi::SenseKey::kIllegalRequest;
  scsi::Asc asc{0, 0};
  bool has_field_pointer = false;  // SKSV field pointer (SPC-4 §4.5.2.4.2).
  bool in_cdb = false;             // C/D
  uint16_t byte = 0;
  int bit = -1;
};

// PrUnitAttention: a unit attention the standard requires for another I_T nexus.
struct PrUnitAttention {
  PrPort port;
  scsi::Asc asc;
};

// PrResult: everything a command produced.
struct PrResult {
  scsi::Status status = scsi::Status::kGood;
  std::optional<PrSense> sense;  // Set when status is CHECK CONDITION.
  std::vector<uint8_t> data;     // PR IN parameter data, untruncated.
  bool changed = false;          // state differs from the input state.
  PrState state;                 // The new state (a copy of the input when !changed).
  std::vector<PrUnitAttention> unit_attentions;
  std::vector<PrPort> aborted;  // PREEMPT AND ABORT: nexuses whose task sets must be aborted.

  bool good() const { return status == scsi::Status::kGood; }
};

// PersistentReserveOut executes PERSISTENT RESERVE OUT (SPC-4 §6.16) from nexus. cdb is the
// 10-byte CDB; parameters holds the Data-Out bytes actually received.
PrResult PersistentReserveOut(const PrState& state, const scsi::Nexus& nexus,
                              std::span<const uint8_t> cdb, std::span<const uint8_t> parameters);

// PersistentReserveIn executes PERSISTENT RESERVE IN (SPC-4 §6.15). data is the full response;
// the caller truncates it to the ALLOCATION LENGTH.
PrResult PersistentReserveIn(const PrState& state, const scsi::Nexus& nexus,
                             std::span<const uint8_t> cdb);

// Spc2ReserveRelease executes RESERVE(6/10) / RELEASE(6/10) (SPC-2 §7.21, §7.16) with the
// compatible reservation handling of SPC-4 §5.13.3 (CRH=1).
PrResult Spc2ReserveRelease(const PrState& state, const scsi::Nexus& nexus,
                            std::span<const uint8_t> cdb);

// Allows applies the access rules (SPC-4 §5.13.1 table 52 / SBC-3 §4.17 table 13, and SPC-2
// §5.5.1 for RESERVE(6/10)) to every command other than the reservation commands themselves.
bool Allows(const PrState& state, const scsi::Nexus& nexus, std::span<const uint8_t> cdb);

// NexusLost: the I_T nexus went away (logout, connection loss): SPC-2 reservations are released,
// persistent reservations and registrations are kept (SPC-4 §5.13.1).
PrState NexusLost(const PrState& state, const scsi::Nexus& nexus);
// AfterReset: LOGICAL UNIT RESET / target reset: SPC-2 reservations are released; persistent
// reservations are not affected (SPC-4 §5.13.1, SAM-5 §6.3).
PrState AfterReset(const PrState& state);

// ApplyToTask sets status, sense and Data-In (truncated to allocation_length) on task.
void ApplyToTask(const PrResult& result, uint32_t allocation_length, scsi::Task* task);

// EncodeIscsiTransportId writes an iSCSI TransportID, format 01b (SPC-4 §7.6.4.6):
// "<name>,i,0x<isid>" NUL-terminated, padded to a multiple of 4.
std::vector<uint8_t> EncodeIscsiTransportId(const PrPort& port);
// DecodeIscsiTransportId parses one at the start of bytes; *consumed is its length. Format 00b
// (name only) is rejected: it names an initiator device, not a port.
std::optional<PrPort> DecodeIscsiTransportId(std::span<const uint8_t> bytes, size_t* consumed);

}  // namespace vios::reservation
