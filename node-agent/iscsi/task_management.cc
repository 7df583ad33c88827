// Task Management Function Request/Response (RFC 7143 §11.5, §11.6; SAM-5 §7). Aborted tasks that
// are still inside the Device are waited for (§4.2.3.1: the TMF response follows their end, and
// their own responses are suppressed); resets are then forwarded to Device::TaskManagement.
#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {
namespace {

constexpr uint8_t kAbortTask = 1;
constexpr uint8_t kAbortTaskSet = 2;
constexpr uint8_t kClearAca = 3;
constexpr uint8_t kClearTaskSet = 4;
constexpr uint8_t kLogicalUnitReset = 5;
constexpr uint8_t kTargetWarmReset = 6;
constexpr uint8_t kTargetColdReset = 7;
constexpr uint8_t kTaskReassign = 8;

// Reservation commands do not touch the medium and may be queued behind the very PREEMPT AND
// ABORT that aborts them (one PR worker per volume): they are aborted without being waited for.
bool IsReservationCommand(uint8_t opcode) {
  switch (opcode) {
    case 0x16:  // RESERVE(6)
    case 0x17:  // RELEASE(6)
    case 0x56:  // RESERVE(10)
    case 0x57:  // RELEASE(10)
    case 0x5e:  // PERSISTENT RESERVE IN
    case 0x5f:  // PERSISTENT RESERVE OUT
      return true;
    default:
      return false;
  }
}

}  // namespace

void Connection::AbortTask(IscsiTask* task, PendingTmf* tmf) {
  switch (task->state) {
    case IscsiTask::State::kReceivingData:
      ReleaseTask(task);  // Never reached the Device.
      break;
    case IscsiTask::State::kSubmitted:
      if (!task->aborted) {  // tmf may be null: aborted, but nobody waits for it.
        task->aborted = true;
        task->tmf = tmf;
        if (tmf != nullptr) ++tmf->waiting;
      }
      break;
    default:
      break;  // Already answered; its response is on the wire.
  }
}

void Connection::HandleTaskManagement(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  TaskManagementView view{bhs};
  if (session_->discovery()) {
    ProtocolError(bhs, RejectReason::kProtocolError, "task management in a discovery session");
    return;
  }
  if (!CheckCmdSn(bhs)) return;
  PendingTmf* tmf = nullptr;
  for (auto& slot : tmfs_) {
    if (!slot.active) {
      tmf = &slot;
      break;
    }
  }
  if (tmf == nullptr) {
    SendReject(bhs, RejectReason::kLongOperationReject);
    return;
  }
  *tmf = PendingTmf{bhs.itt(), view.function(), bhs.lun(), 0, true};
  TmfResponse response = TmfResponse::kComplete;
  uint64_t lun = DecodeLun(bhs.lun());
  switch (view.function()) {
    case kAbortTask: {
      IscsiTask* task = FindTaskByItt(view.referenced_task_tag());
      if (task != nullptr) {
        AbortTask(task, tmf);
      } else if (!SnLess(view.ref_cmd_sn(), session_->exp_cmd_sn())) {
        // §11.5.1: a task not yet received (RefCmdSN in the window) counts as aborted.
        response = TmfResponse::kComplete;
      } else {
        response = TmfResponse::kTaskDoesNotExist;
      }
      break;
    }
    case kAbortTaskSet:
    case kClearTaskSet:
    case kLogicalUnitReset:
    case kTargetWarmReset:
    case kTargetColdReset: {
      const bool whole_target =
          view.function() == kTargetWarmReset || view.function() == kTargetColdReset;
      for (IscsiTask* t = active_head_; t != nullptr;) {
        IscsiTask* next = t->active_next;
        if (whole_target || DecodeLun(t->raw_lun) == lun) AbortTask(t, tmf);
        t = next;
      }
      // ABORT TASK SET is this nexus's own; the others reach every nexus's tasks (SAM-5 §7.3,
      // §7.6, §7.7; RFC 7143 §4.2.3.2): the response waits for those too.
      if (view.function() != kAbortTaskSet) {
        AbortThirdParties(tmf, whole_target ? std::nullopt : std::optional<uint64_t>(lun));
      }
      break;
    }
    case kClearAca:
      response = TmfResponse::kNotSupported;
      break;
    case kTaskReassign:
      response = TmfResponse::kReassignmentNotSupported;  // Needs ERL2.
      break;
    default:
      response = TmfResponse::kRejected;
      break;
  }
  VIOS_LOG(kInfo, "iscsi task management")
      .Field("function", static_cast<unsigned>(view.function()))
      .Field("lun", lun)
      .Field("waiting", tmf->waiting);
  if (response != TmfResponse::kComplete) {
    tmf->waiting = 0;
    tmf->function = 0;  // Nothing to forward.
    OutPdu* out = NewOut();
    out->bhs().SetOpcode(Opcode::kTaskManagementResponse);
    out->bhs().SetFlags(0x80);
    out->bhs().bytes[2] = static_cast<uint8_t>(response);
    out->bhs().SetItt(bhs.itt());
    Enqueue(out, true);
    tmf->active = false;
    return;
  }
  if (tmf->waiting == 0) FinishTmf(tmf);
}

void Connection::AbortThirdParties(PendingTmf* tmf, std::optional<uint64_t> lun) {
  Server::Loop* loop = loop_;
  uint64_t id = id_;
  uint32_t itt = tmf->itt;
  tmf->waiting += static_cast<uint32_t>(session_->target()->AbortOthers(id_, lun, [loop, id, itt] {
    Server::PostTo(loop, id, [itt](Connection* c) {
      if (c != nullptr) c->ThirdPartyAbortDone(itt);
    });
  }));
}

void Connection::ThirdPartyAbortDone(uint32_t tmf_itt) {
  for (PendingTmf& tmf : tmfs_) {
    if (tmf.active && tmf.itt == tmf_itt && tmf.waiting > 0) {
      if (--tmf.waiting == 0) FinishTmf(&tmf);
      AfterEvents();
      return;
    }
  }
}

void Connection::AbortForOtherNexus(std::optional<uint64_t> lun, std::function<void()> done) {
  PendingTmf& tmf = external_tmfs_.emplace_back();
  tmf.active = true;
  tmf.external_done = std::move(done);
  for (IscsiTask* t = active_head_; t != nullptr;) {
    IscsiTask* next = t->active_next;
    if (!lun.has_value() || DecodeLun(t->raw_lun) == *lun) {
      const bool medium = t->cdb_length == 0 || !IsReservationCommand(t->cdb[0]);
      AbortTask(t, medium ? &tmf : nullptr);
    }
    t = next;
  }
  VIOS_LOG(kInfo, "iscsi tasks aborted by another nexus")
      .Field("initiator", session_ ? session_->initiator_name() : std::string())
      .Field("waiting", tmf.waiting);
  if (tmf.waiting == 0) FinishTmf(&tmf);
  AfterEvents();
}

void Connection::FinishTmf(PendingTmf* tmf) {
  if (tmf->external_done) {  // On behalf of another nexus: nothing to answer on this one.
    std::function<void()> done = std::move(tmf->external_done);
    external_tmfs_.remove_if([tmf](const PendingTmf& t) { return &t == tmf; });
    done();
    return;
  }
  TmfResponse response = TmfResponse::kComplete;
  uint8_t function = tmf->function;
  if (!closing_ && (function == kClearTaskSet || function == kLogicalUnitReset ||
                    function == kTargetWarmReset || function == kTargetColdReset)) {
    // The transport's own tasks are gone; let the SCSI layer reset its state (SAM-5 §7).
    auto result = session_->target()->device()->TaskManagement(
        static_cast<scsi::TaskManagementFunction>(function), session_->nexus(),
        DecodeLun(tmf->raw_lun));
    if (result == scsi::TaskManagementResult::kIncorrectLun) {
      response = TmfResponse::kLunDoesNotExist;
    } else if (result == scsi::TaskManagementResult::kFunctionRejected) {
      response = TmfResponse::kRejected;
    }
  }
  if (!closing_) {
    OutPdu* out = NewOut();
    out->bhs().SetOpcode(Opcode::kTaskManagementResponse);
    out->bhs().SetFlags(0x80);
    out->bhs().bytes[2] = static_cast<uint8_t>(response);
    out->bhs().SetItt(tmf->itt);
    // TARGET COLD RESET: the response goes out, then the connection closes (RFC 7143 §11.5.1).
    // The SCSI layer has already reset every logical unit with a power-on unit attention.
    out->close_after = function == kTargetColdReset;
    if (out->close_after) logout_sent_ = true;  // Nothing more is processed on this connection.
    Enqueue(out, true);
    // A cold reset ends every session of the target, not only this one (RFC 7143 §11.5.1).
    if (function == kTargetColdReset) session_->target()->CloseOthers(id_);
  }
  tmf->active = false;
}

}  // namespace vios::iscsi
