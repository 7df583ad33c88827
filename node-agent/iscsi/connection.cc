// Connection core: socket readiness, PDU dispatch, the task pool, completions from the SCSI layer,
// keep-alive ticks and teardown. The send queue is in send_queue.cc.
#include "node-agent/iscsi/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log/log.h"

namespace vios::iscsi {
namespace {

std::string LocalAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    return host;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
    return std::string("[") + host + "]";
  }
  return {};
}

}  // namespace

Connection::Connection(Server* server, Server::Loop* loop, uint64_t id, int fd, PortalInfo portal)
    : server_(server),
      loop_(loop),
      event_loop_(loop->thread.loop()),
      id_(id),
      fd_(fd),
      done_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      portal_(std::move(portal)),
      local_address_(LocalAddress(fd)),
      created_ms_(net::EventLoop::NowMs()),
      last_rx_ms_(created_ms_) {
  // During login the initiator may send up to 8192 bytes per PDU (§13.12 default); accept what we
  // will declare as well, as some initiators assume it early.
  reader_.SetLimits(std::max<uint32_t>(8192, server_->config().limits.max_recv_data_segment_length),
                    false, false);
}

Connection::~Connection() {
  if (fd_ >= 0) close(fd_);
  if (done_fd_ >= 0) close(done_fd_);
}

bool Connection::Start() {
  if (done_fd_ < 0) return false;
  return event_loop_.Add(fd_, EPOLLIN | EPOLLRDHUP, this) &&
         event_loop_.Add(done_fd_, EPOLLIN, &completion_watcher_);
}

void Connection::OnEvents(uint32_t events) {
  if (closing_) return;
  in_events_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSocket();
  if (!closing_ && (events & EPOLLOUT)) Flush();
  in_events_ = false;
  AfterEvents();
}

void Connection::AfterEvents() {
  if (!closing_) Flush();
  MaybeFinish();
}

void Connection::ReadSocket() {
  // Read until EAGAIN, parsing as we go; bounded so one busy connection cannot starve the loop.
  for (int round = 0; round < 16 && !closing_; ++round) {
    long n = reader_.Fill(fd_);
    if (n == 0 || n == -2) {
      Close(n == 0 ? "peer closed the connection" : "socket error");
      return;
    }
    if (n > 0) last_rx_ms_ = net::EventLoop::NowMs();
    Pdu pdu;
    while (!closing_) {
      auto result = reader_.Next(&pdu);
      if (result == PduReader::Result::kNeedMore) break;
      if (result == PduReader::Result::kBadHeaderDigest) {
        Close("header digest error");  // PDU boundaries are lost (§7.8); ERL0 drops the link.
        return;
      }
      if (result == PduReader::Result::kOversize) {
        ProtocolError(pdu.bhs, RejectReason::kProtocolError, "data segment too long");
        return;
      }
      if (!pdu.data_digest_ok) {
        ProtocolError(pdu.bhs, RejectReason::kDataDigestError, "data digest error");
        return;
      }
      Dispatch(pdu);
    }
    if (n < 0) return;  // EAGAIN: all read.
  }
}

void Connection::Dispatch(const Pdu& pdu) {
  // Nothing is processed after a Logout Request (§11.14: the initiator sends no more requests)
  // or its response (§11.15).
  if (logout_sent_ || logout_deferred_) return;
  Opcode op = pdu.bhs.opcode();
  if (!session_) {
    if (op != Opcode::kLoginRequest) {
      Close("PDU other than Login before the full feature phase");
      return;
    }
    HandleLogin(pdu);
    return;
  }
  switch (op) {
    case Opcode::kScsiCommand:
      HandleScsiCommand(pdu);
      break;
    case Opcode::kDataOut:
      HandleDataOut(pdu);
      break;
    case Opcode::kNopOut:
      HandleNopOut(pdu);
      break;
    case Opcode::kTaskManagementRequest:
      HandleTaskManagement(pdu);
      break;
    case Opcode::kTextRequest:
      HandleText(pdu);
      break;
    case Opcode::kLogoutRequest:
      HandleLogout(pdu);
      break;
    case Opcode::kLoginRequest:
      ProtocolError(pdu.bhs, RejectReason::kProtocolError, "Login in full feature phase");
      break;
    default:
      // SNACK (ERL>0 only) and unknown opcodes (§11.17.1: Command not supported).
      if (session_->target()) session_->target()->counters().protocol_errors++;
      SendReject(pdu.bhs, RejectReason::kCommandNotSupported);
      break;
  }
}

bool Connection::CheckCmdSn(const Bhs& bhs) {
  uint32_t cmd_sn = CmdSnOf(bhs);
  if (session_->Check(cmd_sn, bhs.immediate()) != Session::CmdSnCheck::kInWindow) {
    // §4.2.2.1: commands outside the window are silently ignored.
    VIOS_LOG(kDebug, "iscsi command outside CmdSN window")
        .Field("cmdsn", cmd_sn)
        .Field("expcmdsn", session_->exp_cmd_sn());
    return false;
  }
  session_->Accept(cmd_sn, bhs.immediate());
  return true;
}

uint32_t Connection::MaxCmdSn() const { return session_ ? session_->MaxCmdSn(active_count_) : 0; }

IscsiTask* Connection::AllocTask() {
  // The CmdSN window bounds the tasks per session; a little headroom covers immediate commands.
  if (active_count_ >= server_->config().queue_depth + 16) return nullptr;
  IscsiTask* task = task_free_;
  if (task != nullptr) {
    task_free_ = task->next;
  } else {
    task_storage_.push_back(std::make_unique<IscsiTask>());
    task = task_storage_.back().get();
    task->index = static_cast<uint32_t>(task_storage_.size() - 1);
  }
  ++task->generation;
  if (task->generation == 0xffff) task->generation = 1;  // TTT 0xffffffff stays reserved.
  task->next = nullptr;
  task->state = IscsiTask::State::kReceivingData;
  task->received = task->unsolicited_end = task->solicited_end = 0;
  task->expected_data_sn = task->r2t_sn = 0;
  task->outstanding_r2t = 0;
  task->aborted = false;
  task->tmf = nullptr;
  task->pending_sends = 0;
  task->ResetResult();
  task->active_prev = nullptr;
  task->active_next = active_head_;
  if (active_head_ != nullptr) active_head_->active_prev = task;
  active_head_ = task;
  ++active_count_;
  return task;
}

void Connection::ReleaseTask(IscsiTask* task) {
  if (task->active_prev != nullptr) {
    task->active_prev->active_next = task->active_next;
  } else {
    active_head_ = task->active_next;
  }
  if (task->active_next != nullptr) task->active_next->active_prev = task->active_prev;
  task->active_prev = task->active_next = nullptr;
  --active_count_;
  task->state = IscsiTask::State::kFree;
  if (task->capacity > (4u << 20)) {  // Keep pooled memory bounded after a huge transfer.
    task->buffer.reset();
    task->capacity = 0;
  }
  task->next = task_free_;
  task_free_ = task;
}

void Connection::MaybeReleaseTask(IscsiTask* task) {
  if (task->state == IscsiTask::State::kResponding && task->pending_sends == 0) ReleaseTask(task);
}

IscsiTask* Connection::FindTaskByItt(uint32_t itt) {
  for (IscsiTask* t = active_head_; t != nullptr; t = t->active_next) {
    if (t->itt == itt && !t->aborted) return t;
  }
  return nullptr;
}

IscsiTask* Connection::FindTaskByTtt(uint32_t ttt) {
  uint32_t index = ttt & 0xffff;
  if (index >= task_storage_.size()) return nullptr;
  IscsiTask* task = task_storage_[index].get();
  if (task->ttt() != ttt || task->state != IscsiTask::State::kReceivingData) return nullptr;
  return task;
}

void Connection::TaskDone(scsi::Task* done) {
  auto* task = static_cast<IscsiTask*>(done);
  std::lock_guard<std::mutex> lock(done_mu_);
  bool was_empty = done_head_ == nullptr;
  task->next = done_head_;
  done_head_ = task;
  if (was_empty) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(done_fd_, &one, sizeof(one));
  }
}

void Connection::DrainCompletions() {
  uint64_t value = 0;
  [[maybe_unused]] ssize_t r = read(done_fd_, &value, sizeof(value));
  IscsiTask* list;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    list = done_head_;
    done_head_ = nullptr;
  }
  // The list is LIFO; reverse it so responses go out in completion order.
  IscsiTask* ordered = nullptr;
  while (list != nullptr) {
    IscsiTask* next = list->next;
    list->next = ordered;
    ordered = list;
    list = next;
  }
  while (ordered != nullptr) {
    IscsiTask* task = ordered;
    ordered = ordered->next;
    task->next = nullptr;
    --in_device_;
    task->state = IscsiTask::State::kResponding;
    if (task->aborted || closing_) {
      PendingTmf* tmf = task->tmf;
      MaybeReleaseTask(task);
      if (tmf != nullptr && --tmf->waiting == 0) FinishTmf(tmf);
      continue;
    }
    Respond(task);
    MaybeReleaseTask(task);
  }
  MaybeSendDeferredLogout();
  AfterEvents();
}

void Connection::Close(std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  VIOS_LOG(kDebug, "iscsi connection closed").Field("reason", reason).Field("id", id_);
  event_loop_.Remove(fd_);
  shutdown(fd_, SHUT_RDWR);
  while (out_head_ != nullptr) {
    OutPdu* out = out_head_;
    out_head_ = out->next;
    FreeOut(out);
  }
  out_tail_ = nullptr;
  // Tasks still gathering data never reached the Device: drop them now. Submitted ones come
  // back through TaskDone and are dropped then.
  for (IscsiTask* t = active_head_; t != nullptr;) {
    IscsiTask* next = t->active_next;
    if (t->state != IscsiTask::State::kSubmitted) ReleaseTask(t);
    t = next;
  }
  if (!in_events_) MaybeFinish();
}

void Connection::MaybeFinish() {
  if (!closing_ || finished_ || in_device_ > 0) return;
  finished_ = true;
  if (session_) {
    server_->sessions().Unregister(session_->tsih());
    if (Target* target = session_->target()) {
      if (nexus_added_) target->device()->NexusRemoved(session_->nexus());
      target->counters().active_sessions--;
    }
  }
  if (attached_ && login_.target) login_.target->Detach(id_);
  event_loop_.Remove(done_fd_);
  server_->Finished(loop_, id_);
}

void Connection::Tick(uint64_t now_ms) {
  if (closing_) return;
  const ServerConfig& config = server_->config();
  if (!session_) {
    if (now_ms - created_ms_ > static_cast<uint64_t>(config.login_timeout.count())) {
      Close("login timeout");
    }
    return;
  }
  if (ping_outstanding_) {
    if (now_ms - ping_sent_ms_ > static_cast<uint64_t>(config.nop_timeout.count())) {
      Close("NOP-In ping not answered");
    }
    return;
  }
  if (config.nop_interval.count() > 0 &&
      now_ms - last_rx_ms_ > static_cast<uint64_t>(config.nop_interval.count())) {
    SendPing(now_ms);
    Flush();
  }
}

}  // namespace vios::iscsi
