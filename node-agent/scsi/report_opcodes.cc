// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35) and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
// (SPC-4 §6.36), both answered from the opcode table so they match what Execute accepts.
#include <array>
#include <cstring>

#include "node-agent/scsi/logical_unit.h"

namespace vios::scsi {
namespace {

constexpr uint32_t kNominalTimeoutSeconds = 30;

// AppendTimeouts writes a command timeouts descriptor (SPC-4 §6.35.4).
size_t AppendTimeouts(uint8_t* out) {
  std::memset(out, 0, 12);
  wire::Store16(out, 0x0A);
  wire::Store32(out + 4, kNominalTimeoutSeconds);
  wire::Store32(out + 8, kNominalTimeoutSeconds);
  return 12;
}

}  // namespace

void LogicalUnit::ReportSupportedOperationCodes(Task* task) {
  const uint8_t* c = task->cdb.data();
  const bool rctd = (c[2] & 0x80) != 0;
  const uint8_t options = c[2] & 0x07;
  const uint8_t requested_opcode = c[3];
  const uint16_t requested_sa = wire::Load16(c + 4);
  const uint32_t allocation_length = wire::Load32(c + 6);
  std::array<uint8_t, 4096> data{};
  size_t n = 0;

  if (options == 0) {
    n = 4;
    for (const OpcodeEntry& e : Opcodes()) {
      if (!IsSupported(e) || n + 20 > data.size()) {
        continue;
      }
      uint8_t* d = data.data() + n;
      d[0] = e.opcode;
      wire::Store16(d + 2, e.has_service_action ? e.service_action : 0);
      d[5] = static_cast<uint8_t>((rctd ? 0x02 : 0) | (e.has_service_action ? 0x01 : 0));
      wire::Store16(d + 6, e.cdb_length);
      n += 8;
      if (rctd) {
        n += AppendTimeouts(data.data() + n);
      }
    }
    wire::Store32(data.data(), static_cast<uint32_t>(n - 4));
  } else if (options <= 3) {
    // Find the command; options 1 names an opcode without service actions, 2 one with them,
    // 3 either (SPC-5).
    const OpcodeEntry* found = nullptr;
    bool opcode_has_sa = false;
    bool opcode_known = false;
    for (const OpcodeEntry& e : Opcodes()) {
      if (e.opcode != requested_opcode) {
        continue;
      }
      opcode_known = true;
      opcode_has_sa = e.has_service_action;
      if (!e.has_service_action || e.service_action == requested_sa) {
        found = &e;
        break;
      }
    }
    if (opcode_known && ((options == 1 && opcode_has_sa) || (options == 2 && !opcode_has_sa))) {
      SetInvalidFieldInCdb(task, 2, 2);
      task->Complete();
      return;
    }
    if (found != nullptr && !IsSupported(*found)) {
      found = nullptr;
    }
    if (found == nullptr) {
      data[1] = 0x01;  // SUPPORT 001b: not supported.
      n = 4;
    } else {
      data[1] = static_cast<uint8_t>((rctd ? 0x80 : 0) | 0x03);  // SUPPORT 011b: as standard.
      wire::Store16(data.data() + 2, found->cdb_length);
      std::memcpy(data.data() + 4, found->usage.data(), found->cdb_length);
      n = 4 + found->cdb_length;
      if (rctd) {
        n += AppendTimeouts(data.data() + n);
      }
    }
  } else {
    SetInvalidFieldInCdb(task, 2, 2);
    task->Complete();
    return;
  }
  Respond(task, std::span<const uint8_t>(data.data(), n), allocation_length);
  task->Complete();
}

// The transport implements ABORT TASK, ABORT TASK SET, LOGICAL UNIT RESET and TARGET WARM RESET
// (issue 3); this reports exactly those.
void LogicalUnit::ReportSupportedTaskManagementFunctions(Task* task) {
  const uint8_t* c = task->cdb.data();
  const bool repd = (c[2] & 0x80) != 0;
  const uint32_t allocation_length = wire::Load32(c + 6);
  std::array<uint8_t, 16> data{};
  data[0] = 0x80 | 0x40 | 0x08 | 0x02;  // ATS, ATSS, LURS, TRS.
  size_t n = 4;
  if (repd) {
    data[3] = 0x0C;  // Additional data length (extended format).
    n = 16;
  }
  Respond(task, std::span<const uint8_t>(data.data(), n), allocation_length);
  task->Complete();
}

}  // namespace vios::scsi
