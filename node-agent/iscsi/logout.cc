// Logout Request/Response (RFC 7143 §11.14, §11.15). Closing the session or this connection is
// the same with MaxConnections=1; connection recovery (reason 2) needs ERL2 and is refused. A
// logout that arrives while commands are still in the Device is answered after their responses
// (§11.14 lets the target complete outstanding commands first), so none is silently lost.
#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {

void Connection::HandleLogout(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  LogoutRequestView view{bhs};
  if (!CheckCmdSn(bhs)) return;
  LogoutResponse response = LogoutResponse::kSuccess;
  auto reason = static_cast<LogoutReason>(view.reason());
  if (reason == LogoutReason::kRemoveForRecovery) {
    response = LogoutResponse::kRecoveryNotSupported;
  } else if (reason == LogoutReason::kCloseConnection && view.cid() != login_.cid) {
    response = LogoutResponse::kCidNotFound;
  } else if (reason != LogoutReason::kCloseSession && reason != LogoutReason::kCloseConnection) {
    SendReject(bhs, RejectReason::kInvalidPduField);
    return;
  }
  if (response == LogoutResponse::kSuccess && in_device_ > 0) {
    // §11.14: the initiator sends nothing more on this connection; answer when the Device is done.
    logout_deferred_ = true;
    logout_itt_ = bhs.itt();
    VIOS_LOG(kInfo, "iscsi logout waits for commands in flight")
        .Field("initiator", session_->initiator_name())
        .Field("in_flight", in_device_);
    return;
  }
  SendLogoutResponse(bhs.itt(), response);
}

void Connection::MaybeSendDeferredLogout() {
  if (!logout_deferred_ || in_device_ > 0 || closing_) return;
  logout_deferred_ = false;
  SendLogoutResponse(logout_itt_, LogoutResponse::kSuccess);
}

void Connection::SendLogoutResponse(uint32_t itt, LogoutResponse response) {
  OutPdu* out = NewOut();
  Bhs& r = out->bhs();
  r.SetOpcode(Opcode::kLogoutResponse);
  r.SetFlags(0x80);
  r.bytes[2] = static_cast<uint8_t>(response);
  r.SetItt(itt);
  // Time2Wait / Time2Retain = 0: nothing to wait for, nothing retained at ERL0.
  r.SetField16(40, 0);
  r.SetField16(42, 0);
  Enqueue(out, true);
  if (response == LogoutResponse::kSuccess) {
    out->close_after = true;
    logout_sent_ = true;
    VIOS_LOG(kInfo, "iscsi logout").Field("initiator", session_->initiator_name());
  }
}

}  // namespace vios::iscsi
