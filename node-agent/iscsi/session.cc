// Session: nexus naming, CmdSN windowing; SessionTable: TSIH allocation and reinstatement.
#include "node-agent/iscsi/session.h"

#include <cstdio>

namespace vios::iscsi {

std::string FormatIsid(const std::array<uint8_t, 6>& isid) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : isid) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

Session::Session(std::shared_ptr<Target> target, std::string initiator_name,
                 std::array<uint8_t, 6> isid, uint16_t tsih, uint16_t tpgt,
                 const SessionParams& params, uint32_t queue_depth)
    : target_(std::move(target)),
      initiator_name_(std::move(initiator_name)),
      isid_(isid),
      tsih_(tsih),
      params_(params),
      queue_depth_(queue_depth == 0 ? 1 : queue_depth) {
  // Port names of RFC 7143 §4.4.1, used by the SCSI layer as the I_T nexus (SPC-4 §5.13).
  nexus_.initiator_name = initiator_name_;
  nexus_.initiator_port = initiator_name_ + ",i,0x" + FormatIsid(isid_);
  char tag[8];
  std::snprintf(tag, sizeof(tag), "%04x", tpgt);
  nexus_.target_port = (target_ ? target_->iqn() : std::string()) + ",t,0x" + tag;
  nexus_.isid = isid_;
  nexus_.relative_target_port = tpgt == 0 ? 1 : tpgt;
}

Session::CmdSnCheck Session::Check(uint32_t cmd_sn, bool immediate) const {
  if (immediate) return CmdSnCheck::kInWindow;  // Immediate commands skip the window (§3.2.2.1).
  // Only the next expected CmdSN is accepted: with one connection per session, TCP delivers
  // commands in order, so anything else is a duplicate or beyond MaxCmdSN and is ignored.
  return cmd_sn == exp_cmd_sn_ ? CmdSnCheck::kInWindow : CmdSnCheck::kOutOfWindow;
}

void Session::Accept(uint32_t cmd_sn, bool immediate) {
  if (!immediate && cmd_sn == exp_cmd_sn_) ++exp_cmd_sn_;
}

uint32_t Session::MaxCmdSn(uint32_t in_flight) const {
  uint32_t room = in_flight >= queue_depth_ ? 0 : queue_depth_ - in_flight;
  return exp_cmd_sn_ + room - 1;  // room 0 gives ExpCmdSN-1: the window is closed.
}

uint16_t SessionTable::Register(Entry entry, std::function<void()>* reinstated) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    const Entry& e = it->second;
    if (e.initiator_name == entry.initiator_name && e.isid == entry.isid &&
        e.target == entry.target) {
      *reinstated = e.closer;
      sessions_.erase(it);
      break;
    }
  }
  // TSIH 0 is reserved (§11.12.6); skip values in use.
  for (int tries = 0; tries < 65536; ++tries) {
    uint16_t tsih = next_tsih_++;
    if (next_tsih_ == 0) next_tsih_ = 1;
    if (tsih != 0 && sessions_.find(tsih) == sessions_.end()) {
      sessions_.emplace(tsih, std::move(entry));
      return tsih;
    }
  }
  return 0;
}

void SessionTable::Unregister(uint16_t tsih) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(tsih);
}

size_t SessionTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

}  // namespace vios::iscsi
