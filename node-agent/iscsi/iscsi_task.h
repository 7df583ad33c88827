// Per-connection pooled objects of the data path: IscsiTask (one SCSI command with its data
// buffer and R2T state) and OutPdu (one response PDU queued for writev). Both are recycled
// through free lists, so steady-state I/O does not touch the heap.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "node-agent/iscsi/pdu_wire.h"
#include "node-agent/scsi/task.h"

namespace vios::iscsi {

class Connection;
struct PendingTmf;

// IscsiTask extends scsi::Task so the Task* handed back in TaskDone converts with a static_cast.
struct IscsiTask : public scsi::Task {
  // kReceivingData: gathering Data-Out; kSubmitted: owned by the Device until TaskDone;
  // kResponding: the Device finished, response PDUs may still reference the buffer.
  enum class State : uint8_t { kFree, kReceivingData, kSubmitted, kResponding };

  uint32_t index = 0;       // Position in the pool; part of the Target Transfer Tag.
  uint16_t generation = 0;  // Bumped on every reuse so a stale TTT never matches.
  State state = State::kFree;
  IscsiTask* next = nullptr;         // Free list or completion list.
  IscsiTask* active_prev = nullptr;  // Active list (tasks not free).
  IscsiTask* active_next = nullptr;

  // From the SCSI Command PDU.
  uint32_t itt = 0;
  uint32_t cmd_sn = 0;
  uint64_t raw_lun = 0;  // LUN field as sent, echoed in R2T / Data-In.
  uint32_t edtl = 0;
  bool read = false;
  bool write = false;

  // Write data state (RFC 7143 §4.2.5 ff.). Data arrives in order (DataSequenceInOrder=Yes).
  uint32_t received = 0;         // Bytes of Data-Out (and immediate data) received.
  uint32_t unsolicited_end = 0;  // Offset up to which data may arrive without R2T.
  uint32_t solicited_end = 0;    // End of the furthest R2T sent.
  uint32_t expected_data_sn = 0;
  uint32_t r2t_sn = 0;
  uint16_t outstanding_r2t = 0;

  // Completion and abort bookkeeping.
  bool aborted = false;
  PendingTmf* tmf = nullptr;   // The TMF waiting for this aborted task, if any.
  uint32_t pending_sends = 0;  // OutPdus that still reference the buffer.
  uint64_t start_ns = 0;

  // Data buffer: grows once to the largest transfer seen, then is reused.
  std::unique_ptr<uint8_t[]> buffer;
  uint32_t capacity = 0;

  uint32_t ttt() const { return (static_cast<uint32_t>(generation) << 16) | (index & 0xffff); }
  // The buffer is never null, even for zero-length transfers: the SCSI layer may memcpy into an
  // empty span, and memcpy with a null pointer is undefined even for zero bytes.
  void EnsureCapacity(uint32_t bytes) {
    if (bytes > capacity || !buffer) {
      uint32_t rounded = std::max<uint32_t>((bytes + 65535u) & ~65535u, 65536u);
      buffer = std::make_unique_for_overwrite<uint8_t[]>(rounded);
      capacity = rounded;
    }
  }
};

// OutPdu is one PDU on the send queue: BHS (+ header digest), a data segment that points either
// into a task's buffer or into the PDU's own storage, and padding + data digest.
struct OutPdu {
  OutPdu* next = nullptr;
  // BHS and header digest back to back (both byte arrays, so no padding between them).
  struct Header {
    Bhs bhs;
    std::array<uint8_t, kDigestLength> digest;
  } header{};
  uint32_t header_length = kBhsLength;
  const uint8_t* data = nullptr;
  uint32_t data_length = 0;
  std::array<uint8_t, 3 + kDigestLength> tail{};
  uint32_t tail_length = 0;
  uint32_t sent = 0;                // Bytes already written.
  IscsiTask* task = nullptr;        // Holds the task's buffer until written.
  bool close_after = false;         // Logout response: close once it is on the wire.
  std::array<uint8_t, 64> small{};  // Sense data, NOP echo of small pings.
  std::vector<uint8_t> owned;       // Login/Text responses and other control-path data.

  uint32_t total() const { return header_length + data_length + tail_length; }
  Bhs& bhs() { return header.bhs; }
};
static_assert(sizeof(OutPdu::Header) == kBhsLength + kDigestLength);

// PendingTmf is a task management request waiting for aborted tasks to finish (RFC 7143 §4.2.3.1:
// the response goes out only after the affected tasks are gone).
struct PendingTmf {
  uint32_t itt = 0;
  uint8_t function = 0;
  uint64_t raw_lun = 0;
  uint32_t waiting = 0;  // Aborted tasks (ours and, as connections, third parties') not yet back.
  bool active = false;
  // Set for an abort on behalf of another nexus (Connection::AbortForOtherNexus): run instead of
  // sending a TMF response.
  std::function<void()> external_done{};
};

}  // namespace vios::iscsi
