// Sense data helpers and the additional sense codes the SCSI layer reports (SPC-4 §4.5, Annex D).
//
//   SetSense(task, SenseKey::kIllegalRequest, kAscInvalidFieldInCdb);
//   SetInvalidFieldInCdb(task, /*byte=*/1, /*bit=*/3);  // with a sense-key-specific field pointer
#pragma once

#include <cstdint>

#include "node-agent/scsi/scsi_wire.h"
#include "node-agent/scsi/task.h"

namespace vios::scsi {

// An additional sense code and qualifier pair.
struct Asc {
  uint8_t asc;
  uint8_t ascq;
};

inline constexpr Asc kAscNoAdditionalSense{0x00, 0x00};
inline constexpr Asc kAscParameterListLengthError{0x1A, 0x00};
inline constexpr Asc kAscInvalidFieldInInformationUnit{0x0E, 0x03};
inline constexpr Asc kAscInvalidCommandOperationCode{0x20, 0x00};
inline constexpr Asc kAscLbaOutOfRange{0x21, 0x00};
inline constexpr Asc kAscInvalidFieldInCdb{0x24, 0x00};
inline constexpr Asc kAscLogicalUnitNotSupported{0x25, 0x00};
inline constexpr Asc kAscInvalidFieldInParameterList{0x26, 0x00};
inline constexpr Asc kAscWriteProtected{0x27, 0x00};
inline constexpr Asc kAscPowerOnReset{0x29, 0x00};
inline constexpr Asc kAscBusDeviceResetOccurred{0x29, 0x03};
inline constexpr Asc kAscModeParametersChanged{0x2A, 0x01};
inline constexpr Asc kAscReservationsReleased{0x2A, 0x04};
inline constexpr Asc kAscCapacityDataHasChanged{0x2A, 0x09};
inline constexpr Asc kAscSavingParametersNotSupported{0x39, 0x00};
inline constexpr Asc kAscReportedLunsDataHasChanged{0x3F, 0x0E};
inline constexpr Asc kAscMiscompareDuringVerify{0x1D, 0x00};
inline constexpr Asc kAscUnrecoveredReadError{0x11, 0x00};
inline constexpr Asc kAscWriteError{0x0C, 0x00};
inline constexpr Asc kAscInternalTargetFailure{0x44, 0x00};
inline constexpr Asc kAscLogicalUnitCommunicationFailure{0x08, 0x00};

// SetSense sets CHECK CONDITION with fixed-format sense data.
inline void SetSense(Task* task, SenseKey key, Asc asc) {
  task->SetCheckCondition(key, asc.asc, asc.ascq);
}

// SetSenseWithInformation also fills the INFORMATION field and its VALID bit (SPC-4 §4.5.3), e.g.
// the offset of the first miscompare for COMPARE AND WRITE (SBC-3 §5.2).
inline void SetSenseWithInformation(Task* task, SenseKey key, Asc asc, uint32_t information) {
  task->SetCheckCondition(key, asc.asc, asc.ascq);
  task->sense[0] |= 0x80;
  wire::Store32(&task->sense[3], information);
}

// SetInvalidField reports ILLEGAL REQUEST with a sense-key-specific field pointer (SPC-4
// §4.5.2.4.2): in_cdb selects INVALID FIELD IN CDB (C/D=1) or IN PARAMETER LIST (C/D=0).
inline void SetInvalidField(Task* task, bool in_cdb, uint16_t byte, int bit = -1) {
  SetSense(task, SenseKey::kIllegalRequest,
           in_cdb ? kAscInvalidFieldInCdb : kAscInvalidFieldInParameterList);
  uint8_t sks = 0x80;  // SKSV
  if (in_cdb) {
    sks |= 0x40;  // C/D
  }
  if (bit >= 0) {
    sks |= 0x08 | static_cast<uint8_t>(bit & 7);  // BPV + bit pointer
  }
  task->sense[15] = sks;
  wire::Store16(&task->sense[16], byte);
}
inline void SetInvalidFieldInCdb(Task* task, uint16_t byte, int bit = -1) {
  SetInvalidField(task, true, byte, bit);
}
inline void SetInvalidFieldInParameterList(Task* task, uint16_t byte, int bit = -1) {
  SetInvalidField(task, false, byte, bit);
}

}  // namespace vios::scsi
