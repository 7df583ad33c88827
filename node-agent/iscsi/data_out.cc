// SCSI Data-Out (RFC 7143 §11.8) and R2T (§11.9): placing solicited and unsolicited write data,
// checking DataSN and Buffer Offset, and soliciting the rest of a write in MaxBurstLength pieces
// with at most MaxOutstandingR2T R2Ts in flight (§13.17).
#include <algorithm>
#include <cstring>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {

void Connection::SendR2ts(IscsiTask* task) {
  const SessionParams& params = session_->params();
  task->solicited_end = std::max(task->solicited_end, task->received);
  if (task->outstanding_r2t == 0) task->solicited_end = task->received;
  while (task->outstanding_r2t < params.max_outstanding_r2t && task->solicited_end < task->edtl) {
    uint32_t length = std::min(params.max_burst_length, task->edtl - task->solicited_end);
    OutPdu* out = NewOut();
    Bhs& bhs = out->bhs();
    bhs.SetOpcode(Opcode::kR2t);
    bhs.SetFlags(0x80);
    bhs.SetLun(task->raw_lun);
    bhs.SetItt(task->itt);
    bhs.SetField32(20, task->ttt());
    bhs.SetField32(36, task->r2t_sn++);
    bhs.SetField32(40, task->solicited_end);
    bhs.SetField32(44, length);
    Enqueue(out, false);
    task->solicited_end += length;
    ++task->outstanding_r2t;
  }
}

void Connection::HandleDataOut(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  if (session_->discovery()) {
    ProtocolError(bhs, RejectReason::kProtocolError, "Data-Out in a discovery session");
    return;
  }
  DataOutView view{bhs};
  bool solicited = view.ttt() != kReservedTag;
  IscsiTask* task = solicited ? FindTaskByTtt(view.ttt()) : FindTaskByItt(bhs.itt());
  if (task == nullptr || task->state != IscsiTask::State::kReceivingData ||
      task->itt != bhs.itt()) {
    // Data for a command that was aborted or already failed (or a stale TTT): discarded
    // silently, as after ABORT TASK (RFC 7143 §4.2.3.2).
    return;
  }
  uint32_t length = static_cast<uint32_t>(pdu.data.size());
  uint32_t offset = view.buffer_offset();
  uint32_t limit = solicited ? task->solicited_end : task->unsolicited_end;
  // DataPDUInOrder and DataSequenceInOrder are Yes: data must arrive at the next offset with the
  // next DataSN. A violation fails this command only (SPC-4 DATA PHASE ERROR / DATA OFFSET ERROR
  // / TOO MUCH WRITE DATA); later Data-Out for it is discarded and the connection keeps working.
  uint8_t ascq = 0xff;
  if (view.data_sn() != task->expected_data_sn) {
    ascq = 0x00;
  } else if (offset != task->received) {
    ascq = 0x05;
  } else if (length > limit - std::min(limit, offset)) {
    ascq = 0x02;
  }
  if (ascq != 0xff) {
    VIOS_LOG(kWarning, "iscsi Data-Out out of sequence, failing the command")
        .Field("offset", offset)
        .Field("expected_offset", task->received)
        .Field("datasn", view.data_sn())
        .Field("expected_datasn", task->expected_data_sn);
    session_->target()->counters().protocol_errors++;
    session_->target()->counters().errors++;
    task->SetCheckCondition(scsi::SenseKey::kAbortedCommand, 0x4b, ascq);
    SendScsiResponse(task, 0, false, false);
    task->state = IscsiTask::State::kResponding;
    MaybeReleaseTask(task);
    return;
  }
  std::memcpy(task->buffer.get() + offset, pdu.data.data(), length);
  task->received += length;
  ++task->expected_data_sn;
  if (!bhs.final_bit()) return;
  // F ends a sequence: DataSN restarts for the next one (§11.7.5).
  task->expected_data_sn = 0;
  if (solicited) {
    if (task->outstanding_r2t > 0) --task->outstanding_r2t;
  } else {
    task->unsolicited_end = task->received;  // The unsolicited burst may end early.
  }
  if (task->received >= task->edtl) {
    Submit(task);
  } else {
    SendR2ts(task);
  }
}

}  // namespace vios::iscsi
