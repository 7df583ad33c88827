// PRE-FETCH(10/16) (SBC-3 §5.9, §5.10) and READ DEFECT DATA(10/12) (SBC-3 §5.18, §5.19).
//
// Both are answered without touching the backend. PRE-FETCH only validates the range: the agent
// keeps no cache of its own to load (the backend's page cache or remote target does that), so it
// reports GOOD, the status SBC-3 gives when the blocks were not made resident in a cache (CONDITION
// MET would claim they were). A virtual disk has no media defects, so READ DEFECT DATA returns an
// empty list in whatever format the initiator asked for.
#include <array>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {

void LogicalUnit::PreFetch10(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartPreFetch(task, wire::Load32(c + 2), wire::Load16(c + 7));
}

void LogicalUnit::PreFetch16(Task* task) {
  const uint8_t* c = task->cdb.data();
  StartPreFetch(task, wire::Load64(c + 2), wire::Load32(c + 10));
}

// NUMBER OF LOGICAL BLOCKS 0 means "from LBA to the end of the medium" (SBC-3 §5.9).
void LogicalUnit::StartPreFetch(Task* task, uint64_t lba, uint64_t blocks) {
  if (blocks == 0) {
    if (lba > BlockCount()) {
      SetSense(task, SenseKey::kIllegalRequest, kAscLbaOutOfRange);
    } else {
      task->SetGood();
    }
    task->Complete();
    return;
  }
  if (CheckRange(task, lba, blocks)) {
    task->SetGood();
  }
  task->Complete();
}

// Header only: PLISTV/GLISTV echo what was requested (the lists exist and are empty), the format
// echoes the requested one, DEFECT LIST LENGTH 0.
void LogicalUnit::ReadDefectData10(Task* task) {
  const uint8_t* c = task->cdb.data();
  std::array<uint8_t, 4> header{};
  header[1] = static_cast<uint8_t>(c[2] & 0x1F);
  Respond(task, header, wire::Load16(c + 7));
  task->Complete();
}

void LogicalUnit::ReadDefectData12(Task* task) {
  const uint8_t* c = task->cdb.data();
  std::array<uint8_t, 8> header{};
  header[1] = static_cast<uint8_t>(c[1] & 0x1F);
  Respond(task, header, wire::Load32(c + 6));
  task->Complete();
}

}  // namespace vios::scsi
