// SCSI Command PDU (RFC 7143 §11.3) and the responses to it: immediate and unsolicited data
// accounting (§4.2.5.1 ff.), submission to the Device, Data-In with status phase collapse
// (§11.7.4), SCSI Response with sense data (§11.4.7) and residual counts (§11.4.5).
#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// ParseCdb copies the CDB from the BHS and, when present, the Extended CDB AHS (§11.2.2.3).
bool ParseCdb(const Pdu& pdu, IscsiTask* task) {
  std::memcpy(task->cdb.data(), ScsiCommandView{pdu.bhs}.cdb(), kBhsCdbLength);
  task->cdb_length = kBhsCdbLength;
  size_t pos = 0;
  while (pos + 4 <= pdu.ahs.size()) {
    uint16_t length = LoadBe16(&pdu.ahs[pos]);
    uint8_t type = pdu.ahs[pos + 2];
    size_t padded = (static_cast<size_t>(length) + 3 + 3) & ~size_t{3};  // Header + pad.
    if (pos + padded > pdu.ahs.size() || length == 0) return false;
    if (type == kAhsTypeExtendedCdb) {
      size_t extra = length - 1;  // The length counts the reserved byte.
      if (kBhsCdbLength + extra > scsi::Task::kMaxCdbLength) return false;
      std::memcpy(task->cdb.data() + kBhsCdbLength, &pdu.ahs[pos + 4], extra);
      task->cdb_length = kBhsCdbLength + extra;
    }
    pos += padded;
  }
  return pos == pdu.ahs.size();
}

}  // namespace

void Connection::FailCommand(const Bhs& bhs, scsi::Status status, scsi::SenseKey key, uint8_t asc,
                             uint8_t ascq) {
  // A response for a command that never got a task: build the task-less SCSI Response here.
  scsi::Task result;
  if (status == scsi::Status::kCheckCondition) {
    result.SetCheckCondition(key, asc, ascq);
  } else {
    result.status = status;
  }
  OutPdu* out = NewOut();
  Bhs& r = out->bhs();
  r.SetOpcode(Opcode::kScsiResponse);
  r.SetFlags(0x80);
  r.bytes[3] = static_cast<uint8_t>(result.status);
  r.SetItt(bhs.itt());
  if (result.sense_length > 0) {
    StoreBe16(out->small.data(), static_cast<uint16_t>(result.sense_length));
    std::memcpy(out->small.data() + 2, result.sense.data(), result.sense_length);
    out->data = out->small.data();
    out->data_length = static_cast<uint32_t>(2 + result.sense_length);
  }
  uint32_t edtl = ScsiCommandView{bhs}.expected_transfer_length();
  if (edtl > 0) {
    r.SetFlags(0x80 | 0x02);  // Nothing transferred: all of it is residual underflow.
    r.SetField32(44, edtl);
  }
  Enqueue(out, true);
}

void Connection::HandleScsiCommand(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  if (session_->discovery()) {
    ProtocolError(bhs, RejectReason::kProtocolError, "SCSI command in a discovery session");
    return;
  }
  if (!CheckCmdSn(bhs)) return;
  ScsiCommandView cmd{bhs};
  const SessionParams& params = session_->params();
  uint32_t edtl = cmd.expected_transfer_length();
  uint32_t immediate = static_cast<uint32_t>(pdu.data.size());
  if (immediate > 0 && (!cmd.write() || !params.immediate_data ||
                        immediate > std::min(edtl, params.first_burst_length))) {
    ProtocolError(bhs, RejectReason::kProtocolError, "unexpected immediate data");
    return;
  }
  if (cmd.write() && !bhs.final_bit() && params.initial_r2t) {
    ProtocolError(bhs, RejectReason::kProtocolError, "unsolicited data with InitialR2T=Yes");
    return;
  }
  if (FindTaskByItt(bhs.itt()) != nullptr) {
    SendReject(bhs, RejectReason::kTaskInProgress);
    return;
  }
  if (cmd.read() && cmd.write()) {
    // Bidirectional commands need a second buffer and the AHS read length; no SBC command the
    // SCSI layer implements uses them.
    FailCommand(bhs, scsi::Status::kCheckCondition, scsi::SenseKey::kIllegalRequest, 0x24, 0);
    return;
  }
  if (edtl > server_->config().max_io_bytes) {
    FailCommand(bhs, scsi::Status::kCheckCondition, scsi::SenseKey::kIllegalRequest, 0x24, 0);
    return;
  }
  IscsiTask* task = AllocTask();
  if (task == nullptr) {
    FailCommand(bhs, scsi::Status::kTaskSetFull, scsi::SenseKey::kNoSense, 0, 0);
    return;
  }
  if (!ParseCdb(pdu, task)) {
    ReleaseTask(task);
    ProtocolError(bhs, RejectReason::kInvalidPduField, "malformed AHS");
    return;
  }
  task->itt = bhs.itt();
  task->cmd_sn = CmdSnOf(bhs);
  task->raw_lun = bhs.lun();
  task->edtl = edtl;
  task->read = cmd.read();
  task->write = cmd.write();
  task->attribute = static_cast<scsi::TaskAttribute>(std::min<uint8_t>(cmd.attribute(), 4));
  task->EnsureCapacity(edtl);
  if (!task->write) {
    Submit(task);
    return;
  }
  std::memcpy(task->buffer.get(), pdu.data.data(), immediate);
  task->received = immediate;
  // Unsolicited data (§4.2.5.1): with F=0 the initiator sends Data-Out up to FirstBurstLength.
  task->unsolicited_end = bhs.final_bit() ? immediate : std::min(edtl, params.first_burst_length);
  task->solicited_end = task->unsolicited_end;
  if (task->received >= edtl) {
    Submit(task);
  } else if (task->received >= task->unsolicited_end) {
    SendR2ts(task);
  }
}

void Connection::Submit(IscsiTask* task) {
  task->lun = DecodeLun(task->raw_lun);
  task->tag = task->itt;
  if (task->write) {
    task->direction = scsi::DataDirection::kWrite;
    task->data_out = std::span<const uint8_t>(task->buffer.get(), task->received);
    task->data_in = {};
  } else {
    task->direction = task->read ? scsi::DataDirection::kRead : scsi::DataDirection::kNone;
    task->data_out = {};
    task->data_in = std::span<uint8_t>(task->buffer.get(), task->read ? task->edtl : 0);
  }
  task->expected_transfer_length = task->edtl;
  task->nexus = &session_->nexus();
  task->completion = this;
  task->ResetResult();
  task->state = IscsiTask::State::kSubmitted;
  task->start_ns = NowNs();
  ++in_device_;
  session_->target()->device()->Submit(task);
}

void Connection::Respond(IscsiTask* task) {
  TargetCounters& counters = session_->target()->counters();
  counters.commands++;
  counters.latency_ns_sum += NowNs() - task->start_ns;
  if (task->status != scsi::Status::kGood) counters.errors++;
  if (task->write) {
    counters.write_commands++;
    task->expected_data_sn = 0;
    counters.write_bytes += task->received;
    uint32_t wanted = task->transfer_length != scsi::Task::kUnknownLength ? task->transfer_length
                                                                          : task->received;
    bool over = wanted > task->edtl;
    bool under = wanted < task->edtl;
    SendScsiResponse(task, over ? wanted - task->edtl : task->edtl - wanted, under, over);
    return;
  }
  uint32_t length = task->read ? std::min(task->data_in_length, task->edtl) : 0;
  // Residuals (§11.4.5.1): overflow when the CDB asked for more than the EDTL (the logical unit
  // tells us through transfer_length), otherwise underflow by what was not transferred.
  bool over =
      task->transfer_length != scsi::Task::kUnknownLength && task->transfer_length > task->edtl;
  bool under = !over && length < task->edtl;
  uint32_t residual = over ? task->transfer_length - task->edtl : task->edtl - length;
  if (task->read) {
    counters.read_commands++;
    counters.read_bytes += length;
  }
  // Status rides on the last Data-In (S bit) unless there is sense data to send (§11.7.4).
  bool collapse = length > 0 && task->sense_length == 0;
  const SessionParams& params = session_->params();
  uint32_t chunk_limit = params.initiator_max_recv_data_segment_length;
  uint32_t burst = params.max_burst_length;
  uint32_t data_sn = 0;
  for (uint32_t offset = 0; offset < length;) {
    // A Data-In PDU never crosses a MaxBurstLength boundary; F ends each sequence (§11.7.1).
    uint32_t burst_end = std::min(length, (offset / burst + 1) * burst);
    uint32_t n = std::min(chunk_limit, burst_end - offset);
    bool last = offset + n == length;
    OutPdu* out = NewOut();
    Bhs& bhs = out->bhs();
    bhs.SetOpcode(Opcode::kDataIn);
    uint8_t flags = (offset + n == burst_end) ? 0x80 : 0;
    if (last && collapse) {
      flags |= 0x80 | 0x01;
      if (under) flags |= 0x02;
      if (over) flags |= 0x04;
      bhs.bytes[3] = static_cast<uint8_t>(task->status);
      bhs.SetField32(44, residual);
    }
    bhs.SetFlags(flags);
    bhs.SetLun(task->raw_lun);
    bhs.SetItt(task->itt);
    bhs.SetField32(20, kReservedTag);
    bhs.SetField32(36, data_sn++);
    bhs.SetField32(40, offset);
    out->data = task->buffer.get() + offset;
    out->data_length = n;
    out->task = task;
    Enqueue(out, last && collapse);
    offset += n;
  }
  task->expected_data_sn = data_sn;  // Reported as ExpDataSN in the SCSI Response.
  if (!collapse) SendScsiResponse(task, residual, under, over);
}

void Connection::SendScsiResponse(IscsiTask* task, uint32_t residual, bool underflow,
                                  bool overflow) {
  OutPdu* out = NewOut();
  Bhs& bhs = out->bhs();
  bhs.SetOpcode(Opcode::kScsiResponse);
  uint8_t flags = 0x80;
  if (underflow) flags |= 0x02;
  if (overflow) flags |= 0x04;
  bhs.SetFlags(flags);
  bhs.bytes[2] = 0x00;  // Command completed at target.
  bhs.bytes[3] = static_cast<uint8_t>(task->status);
  bhs.SetItt(task->itt);
  // ExpDataSN: Data-In PDUs (reads) or R2Ts (writes) sent for the command (§11.4.6).
  bhs.SetField32(36, task->write ? task->r2t_sn : task->expected_data_sn);
  bhs.SetField32(44, residual);
  if (task->sense_length > 0) {
    // Sense data is prefixed by its 2-byte length (§11.4.7.2).
    size_t n = std::min(task->sense_length, out->small.size() - 2);
    StoreBe16(out->small.data(), static_cast<uint16_t>(n));
    std::memcpy(out->small.data() + 2, task->sense.data(), n);
    out->data = out->small.data();
    out->data_length = static_cast<uint32_t>(2 + n);
  }
  Enqueue(out, true);
}

}  // namespace vios::iscsi
