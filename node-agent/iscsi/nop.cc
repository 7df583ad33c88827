// NOP-Out/NOP-In (RFC 7143 §11.18, §11.19): answering initiator pings (echoing their data) and
// the target's own keep-alive pings on idle connections, whose answers clear the timeout.
#include <cstring>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {

void Connection::HandleNopOut(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  uint32_t ttt = TextRequestView{bhs}.ttt();
  if (bhs.itt() == kReservedTag) {
    // An answer to our ping (TTT echoes ours), or a ping that wants no answer (§11.18.3).
    if (ttt != kReservedTag && ttt == ping_ttt_) ping_outstanding_ = false;
    if (!bhs.immediate()) CheckCmdSn(bhs);
    return;
  }
  if (!CheckCmdSn(bhs)) return;
  OutPdu* out = NewOut();
  Bhs& r = out->bhs();
  r.SetOpcode(Opcode::kNopIn);
  r.SetFlags(0x80);
  r.SetLun(bhs.lun());
  r.SetItt(bhs.itt());
  r.SetField32(20, kReservedTag);
  // Ping data comes back unchanged, up to what the initiator can receive.
  size_t n =
      std::min<size_t>(pdu.data.size(), session_->params().initiator_max_recv_data_segment_length);
  if (n <= out->small.size()) {
    std::memcpy(out->small.data(), pdu.data.data(), n);
    out->data = out->small.data();
    out->data_length = static_cast<uint32_t>(n);
  } else {
    SetOwnedData(out, std::vector<uint8_t>(pdu.data.begin(), pdu.data.begin() + n));
  }
  Enqueue(out, true);
}

void Connection::SendPing(uint64_t now_ms) {
  OutPdu* out = NewOut();
  Bhs& r = out->bhs();
  r.SetOpcode(Opcode::kNopIn);
  r.SetFlags(0x80);
  r.SetItt(kReservedTag);
  ++ping_ttt_;
  if (ping_ttt_ == kReservedTag) ping_ttt_ = 1;
  r.SetField32(20, ping_ttt_);
  Enqueue(out, false);  // A ping carries StatSN but does not advance it (§11.19.3).
  ping_outstanding_ = true;
  ping_sent_ms_ = now_ms;
}

}  // namespace vios::iscsi
