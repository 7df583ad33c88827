// Text Request/Response (RFC 7143 §11.10, §11.11) and SendTargets (§12.3, Appendix C): a
// discovery or normal session lists the targets its initiator may log in to (ACL) through this
// portal group, with their portal addresses. Long answers are split with the C bit and continued
// when the initiator sends an empty Text Request carrying our Target Transfer Tag.
#include <algorithm>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {

std::vector<uint8_t> Connection::SendTargets(const std::string& which) {
  TextKeys keys;
  std::vector<std::shared_ptr<Target>> targets;
  if (which == "All") {
    targets = server_->registry().List();
  } else if (which.empty()) {
    // In a normal session an empty value means the session's own target (§12.3).
    if (session_->target()) targets.push_back(session_->shared_target());
  } else if (auto t = server_->registry().Find(which)) {
    targets.push_back(t);
  }
  const std::string& initiator = session_->initiator_name();
  for (const auto& target : targets) {
    if (target->removed() || !target->InitiatorAllowed(initiator) ||
        !target->OnPortalGroup(portal_.tpgt)) {
      continue;
    }
    keys.Add("TargetName", target->iqn());
    for (const PortalInfo& portal : server_->Portals()) {
      if (!target->OnPortalGroup(portal.tpgt)) continue;
      // A wildcard listener is reported with the address this connection came in on.
      std::string host = portal.host;
      if (host.empty() || host == "0.0.0.0" || host == "::") host = local_address_;
      std::string address =
          host + ":" + std::to_string(portal.port) + "," + std::to_string(portal.tpgt);
      // TargetAddress may repeat within one TargetName (Appendix C); TextKeys keeps order.
      keys.Add("TargetAddress", address);
    }
  }
  std::vector<uint8_t> out;
  keys.Serialize(&out);
  return out;
}

void Connection::SendTextChunk(uint32_t itt, uint64_t raw_lun) {
  uint32_t limit = session_->params().initiator_max_recv_data_segment_length;
  size_t left = text_pending_.size() - text_offset_;
  size_t n = std::min<size_t>(left, limit);
  bool more = n < left;
  OutPdu* out = NewOut();
  Bhs& r = out->bhs();
  r.SetOpcode(Opcode::kTextResponse);
  r.SetFlags(more ? 0x40 : 0x80);
  r.SetLun(raw_lun);
  r.SetItt(itt);
  if (more) {
    text_ttt_ = (text_ttt_ + 1) & 0x7fffffff;
    r.SetField32(20, text_ttt_);
  } else {
    r.SetField32(20, kReservedTag);
  }
  SetOwnedData(out, std::vector<uint8_t>(text_pending_.begin() + text_offset_,
                                         text_pending_.begin() + text_offset_ + n));
  Enqueue(out, true);
  text_offset_ += n;
  if (!more) {
    text_pending_.clear();
    text_offset_ = 0;
  }
}

void Connection::HandleText(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  TextRequestView view{bhs};
  if (!CheckCmdSn(bhs)) return;
  if (view.ttt() != kReservedTag) {
    // Continuation of a long response we split (§11.10.4).
    if (view.ttt() != text_ttt_ || text_pending_.empty()) {
      SendReject(bhs, RejectReason::kInvalidPduField);
      return;
    }
    SendTextChunk(bhs.itt(), bhs.lun());
    return;
  }
  if (view.cont()) {
    // Multi-PDU text requests are not needed for SendTargets; refuse rather than buffer.
    SendReject(bhs, RejectReason::kCommandNotSupported);
    return;
  }
  TextKeys keys;
  std::string error;
  if (!keys.Parse(pdu.data, &error)) {
    ProtocolError(bhs, RejectReason::kProtocolError, error);
    return;
  }
  TextKeys answer;
  std::vector<uint8_t> data;
  for (const auto& [key, value] : keys.pairs()) {
    if (key == "SendTargets") {
      std::vector<uint8_t> targets = SendTargets(value);
      data.insert(data.end(), targets.begin(), targets.end());
    } else {
      // Renegotiation in the full feature phase is not supported.
      answer.Add(key, "NotUnderstood");
    }
  }
  answer.Serialize(&data);
  text_pending_ = std::move(data);
  text_offset_ = 0;
  SendTextChunk(bhs.itt(), bhs.lun());
}

}  // namespace vios::iscsi
