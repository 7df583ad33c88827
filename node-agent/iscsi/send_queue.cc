// Send queue of a connection: pooled OutPdus, StatSN/ExpCmdSN/MaxCmdSN stamping, padding and
// digests (RFC 7143 §11.2), and the gather write that puts BHS, data and tail on the wire without
// copying data out of task buffers.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"
#include "node-agent/iscsi/crc32c.h"

namespace vios::iscsi {
namespace {

constexpr int kMaxIov = 64;

}  // namespace

OutPdu* Connection::NewOut() {
  OutPdu* out = out_free_;
  if (out != nullptr) {
    out_free_ = out->next;
  } else {
    out_storage_.push_back(std::make_unique<OutPdu>());
    out = out_storage_.back().get();
  }
  out->next = nullptr;
  out->header.bhs.bytes.fill(0);
  out->header_length = kBhsLength;
  out->data = nullptr;
  out->data_length = 0;
  out->tail_length = 0;
  out->sent = 0;
  out->task = nullptr;
  out->close_after = false;
  out->owned.clear();
  return out;
}

void Connection::FreeOut(OutPdu* out) {
  if (out->task != nullptr) {
    IscsiTask* task = out->task;
    out->task = nullptr;
    --task->pending_sends;
    MaybeReleaseTask(task);
  }
  if (out->owned.capacity() > 4096) std::vector<uint8_t>().swap(out->owned);
  out->next = out_free_;
  out_free_ = out;
}

void Connection::SetOwnedData(OutPdu* out, std::vector<uint8_t> data) {
  out->owned = std::move(data);
  out->data = out->owned.data();
  out->data_length = static_cast<uint32_t>(out->owned.size());
}

void Connection::Enqueue(OutPdu* out, bool status_bearing) {
  Bhs& bhs = out->bhs();
  bhs.SetDataSegmentLength(out->data_length);
  bhs.SetStatSn(stat_sn_);
  if (status_bearing) ++stat_sn_;
  if (session_) {
    bhs.SetExpCmdSn(session_->exp_cmd_sn());
    bhs.SetMaxCmdSn(MaxCmdSn());
  }
  if (header_digest_) {
    StoreLe32(out->header.digest.data(), Crc32c(bhs.bytes.data(), kBhsLength));
    out->header_length = kBhsLength + kDigestLength;
  }
  uint32_t pad = PadLength(out->data_length);
  out->tail.fill(0);
  out->tail_length = pad;
  if (data_digest_ && out->data_length > 0) {
    uint32_t crc = Crc32cUpdate(kCrc32cInit, out->data, out->data_length);
    crc = Crc32cUpdate(crc, out->tail.data(), pad);
    StoreLe32(out->tail.data() + pad, Crc32cFinish(crc));
    out->tail_length += kDigestLength;
  }
  if (out->task != nullptr) ++out->task->pending_sends;
  if (out_tail_ != nullptr) {
    out_tail_->next = out;
  } else {
    out_head_ = out;
  }
  out_tail_ = out;
}

void Connection::Flush() {
  while (out_head_ != nullptr && !closing_) {
    iovec iov[kMaxIov];
    int count = 0;
    for (OutPdu* out = out_head_; out != nullptr && count + 3 <= kMaxIov; out = out->next) {
      // Skip what an earlier partial write already sent.
      uint32_t skip = out->sent;
      auto add = [&](const void* base, uint32_t length) {
        if (skip >= length) {
          skip -= length;
          return;
        }
        iov[count].iov_base = const_cast<uint8_t*>(static_cast<const uint8_t*>(base) + skip);
        iov[count].iov_len = length - skip;
        skip = 0;
        ++count;
      };
      add(&out->header, out->header_length);
      if (out->data_length > 0) add(out->data, out->data_length);
      if (out->tail_length > 0) add(out->tail.data(), out->tail_length);
    }
    // sendmsg rather than writev: MSG_NOSIGNAL turns a peer that vanished into EPIPE instead of
    // a process-killing SIGPIPE.
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        WantWrite(true);
        return;
      }
      Close("send failed");
      return;
    }
    auto written = static_cast<uint64_t>(n);
    while (out_head_ != nullptr && written > 0) {
      OutPdu* out = out_head_;
      uint32_t left = out->total() - out->sent;
      if (written < left) {
        out->sent += static_cast<uint32_t>(written);
        break;
      }
      written -= left;
      out_head_ = out->next;
      if (out_head_ == nullptr) out_tail_ = nullptr;
      bool close_after = out->close_after;
      FreeOut(out);
      if (close_after) {
        Close("logged out");
        return;
      }
    }
  }
  WantWrite(false);
}

void Connection::WantWrite(bool on) {
  if (on == want_write_ || closing_) return;
  want_write_ = on;
  event_loop_.Modify(fd_, EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u), this);
}

void Connection::SendReject(const Bhs& rejected, RejectReason reason) {
  OutPdu* out = NewOut();
  Bhs& bhs = out->bhs();
  bhs.SetOpcode(Opcode::kReject);
  bhs.SetFlags(0x80);
  bhs.bytes[2] = static_cast<uint8_t>(reason);
  bhs.SetItt(kReservedTag);
  // The data segment is the rejected PDU's header (§11.17).
  std::memcpy(out->small.data(), rejected.bytes.data(), kBhsLength);
  out->data = out->small.data();
  out->data_length = kBhsLength;
  Enqueue(out, true);
}

void Connection::ProtocolError(const Bhs& bhs, RejectReason reason, std::string_view what) {
  VIOS_LOG(kWarning, "iscsi protocol error, closing connection")
      .Field("error", what)
      .Field("opcode", static_cast<unsigned>(bhs.RawOpcode()))
      .Field("initiator", session_ ? session_->initiator_name() : login_.initiator_name);
  if (session_ && session_->target()) session_->target()->counters().protocol_errors++;
  if (session_) {
    // Send the Reject, then drop the connection once it is written (ERL0 session recovery).
    SendReject(bhs, reason);
    out_tail_->close_after = true;
    logout_sent_ = true;  // Stop processing further PDUs.
    Flush();
  } else {
    Close(what);
  }
}

}  // namespace vios::iscsi
