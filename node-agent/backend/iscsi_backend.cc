// IscsiBackend: libiscsi session thread, request translation and completion.
#include "node-agent/backend/iscsi_backend.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>

#include "common/log/log.h"

namespace vios::backend {
namespace {

constexpr uint64_t kMaxUnmapBlocks = 1u << 22;
constexpr uint64_t kMaxWriteSameBlocks = 0xFFFF;
constexpr uint64_t kZeroChunk = 1u << 20;
constexpr int kUnitAttentionRetries = 3;

const std::array<uint8_t, kZeroChunk>& Zeroes() {
  static const auto* zeroes = new std::array<uint8_t, kZeroChunk>{};
  return *zeroes;
}

}  // namespace

struct IscsiBackend::Op {
  IoRequest* request = nullptr;
  uint64_t done = 0;   // Bytes completed by earlier steps.
  uint64_t chunk = 0;  // Bytes of the step in flight.
  int retries = 0;
  bool zero_writes = false;  // WRITE SAME / UNMAP refused by the target: write zero buffers.
  scsi_iovec iov{};
  unmap_list unmap{};
  IscsiBackend* backend = nullptr;
  // Reads and writes reuse this task (libiscsi's *_task helpers malloc one per command); the
  // data moves through iov, so libiscsi allocates nothing for it beyond its cached PDUs.
  scsi_task task{};
};

namespace {

// PrepareReadWrite16 fills op's own task with a READ(16) or WRITE(16) CDB (SBC-3 §5.16, §5.40)
// over op->iov.
void PrepareReadWrite16(IscsiBackend::Op* op, bool write, uint64_t lba, uint32_t blocks,
                        uint32_t bytes) {
  scsi_task& t = op->task;
  t = scsi_task{};
  t.cdb_size = 16;
  t.cdb[0] = write ? 0x8a : 0x88;
  for (int i = 0; i < 8; ++i) t.cdb[2 + i] = static_cast<unsigned char>(lba >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) t.cdb[10 + i] = static_cast<unsigned char>(blocks >> (24 - 8 * i));
  t.xfer_dir = write ? SCSI_XFER_WRITE : SCSI_XFER_READ;
  t.expxferlen = static_cast<int>(bytes);
  if (write) {
    scsi_task_set_iov_out(&t, &op->iov, 1);
  } else {
    scsi_task_set_iov_in(&t, &op->iov, 1);
  }
}

}  // namespace

IscsiBackend::IscsiBackend(IscsiBackendOptions options)
    : options_(std::move(options)), backoff_(options_.backoff_initial) {}

std::unique_ptr<IscsiBackend> IscsiBackend::Open(const IscsiBackendOptions& options,
                                                 std::string* error) {
  std::unique_ptr<IscsiBackend> b(new IscsiBackend(options));
  b->event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->event_fd_ < 0) {
    *error = "eventfd failed";
    return nullptr;
  }
  b->thread_ = std::thread([raw = b.get()] { raw->Run(); });
  std::unique_lock<std::mutex> lock(b->ready_mutex_);
  if (!b->ready_cv_.wait_for(lock, options.connect_timeout, [&] { return b->ready_; })) {
    *error = "iscsi://" + options.portal + "/" + options.target + "/" +
             std::to_string(options.lun) + ": no login within the timeout" +
             (b->last_error_.empty() ? "" : " (" + b->last_error_ + ")");
    lock.unlock();
    return nullptr;  // The destructor stops the thread.
  }
  return b;
}

IscsiBackend::~IscsiBackend() {
  stop_.store(true);
  Wake();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (event_fd_ >= 0) {
    ::close(event_fd_);
  }
}

std::string IscsiBackend::Describe() const {
  return "iscsi://" + options_.portal + "/" + options_.target + "/" + std::to_string(options_.lun);
}

void IscsiBackend::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

void IscsiBackend::Submit(IoRequest* request) {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    queue_.push_back(request);
  }
  Wake();
}

IscsiBackend::Op* IscsiBackend::NewOp() {
  if (free_ops_.empty()) {
    ops_.push_back(std::make_unique<Op>());
    ops_.back()->backend = this;
    return ops_.back().get();
  }
  Op* op = free_ops_.back();
  free_ops_.pop_back();
  return op;
}

void IscsiBackend::FreeOp(Op* op) { free_ops_.push_back(op); }

void IscsiBackend::Run() {
  next_attempt_ = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (iscsi_ == nullptr && now >= next_attempt_) {
      StartConnect();
    }
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      draining_.swap(queue_);
    }
    for (IoRequest* r : draining_) {
      if (connected_.load() && iscsi_ != nullptr) {
        Issue(r);
      } else {
        r->result = -ENOTCONN;
        r->completion->IoDone(r);
      }
    }
    draining_.clear();

    std::array<pollfd, 2> fds{};
    fds[0] = {event_fd_, POLLIN, 0};
    nfds_t nfds = 1;
    int timeout_ms = 500;  // iscsi_service(0) regularly: libiscsi checks command timeouts there.
    if (iscsi_ != nullptr) {
      const int events = iscsi_which_events(iscsi_);
      if (events != 0) {
        fds[1] = {iscsi_get_fd(iscsi_), static_cast<short>(events), 0};
        nfds = 2;
      } else {
        timeout_ms = 100;  // Reconnecting inside libiscsi: poll again shortly.
      }
    } else {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now);
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 1, 1000));
    }
    const int n = ::poll(fds.data(), nfds, timeout_ms);
    if (n < 0 && errno != EINTR) {
      VIOS_LOG(kError, "poll failed").Field("backend", Describe()).Field("errno", errno);
    }
    if ((fds[0].revents & POLLIN) != 0) {
      uint64_t value = 0;
      [[maybe_unused]] ssize_t r = ::read(event_fd_, &value, sizeof(value));
    }
    if (iscsi_ != nullptr) {
      const int revents = nfds == 2 ? fds[1].revents : 0;
      if (iscsi_service(iscsi_, revents) < 0) {
        DropContext("session failed", iscsi_get_error(iscsi_));
      }
    }
    if (reset_requested_.exchange(false) && iscsi_ != nullptr) {
      std::string why;
      {
        std::lock_guard<std::mutex> lock(reset_mutex_);
        why = reset_reason_;
      }
      DropContext("session reset", why);
    }
    if (drop_ && iscsi_ != nullptr) {
      drop_ = false;
      iscsi_context* dead = iscsi_;
      iscsi_ = nullptr;
      AbortSocket(dead);
      iscsi_destroy_context(dead);  // Cancels commands in flight: they complete with ENOTCONN.
    }
  }
  if (iscsi_ != nullptr) {
    connected_.store(false);
    iscsi_context* dead = iscsi_;
    iscsi_ = nullptr;
    iscsi_destroy_context(dead);
  }
  std::lock_guard<std::mutex> lock(queue_mutex_);
  for (IoRequest* r : queue_) {
    r->result = -ENOTCONN;
    r->completion->IoDone(r);
  }
  queue_.clear();
}

void IscsiBackend::StartConnect() {
  iscsi_ = iscsi_create_context(options_.initiator_name.c_str());
  if (iscsi_ == nullptr) {
    DropContext("cannot create context", "");
    return;
  }
  iscsi_set_targetname(iscsi_, options_.target.c_str());
  iscsi_set_session_type(iscsi_, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(iscsi_, ISCSI_HEADER_DIGEST_NONE);
  if (!options_.chap_user.empty()) {
    iscsi_set_initiator_username_pwd(iscsi_, options_.chap_user.c_str(),
                                     options_.chap_secret.c_str());
  }
  if (!options_.target_chap_user.empty()) {
    iscsi_set_target_username_pwd(iscsi_, options_.target_chap_user.c_str(),
                                  options_.target_chap_secret.c_str());
  }
  // We reconnect ourselves: a lost connection cancels the commands in flight (-ENOTCONN, a path
  // error the router can act on) instead of parking them inside libiscsi for an unbounded time.
  iscsi_set_noautoreconnect(iscsi_, 1);
  iscsi_set_cache_allocations(iscsi_, 1);  // PDUs from libiscsi's free lists, not malloc.
  if (options_.command_timeout_seconds > 0) {
    iscsi_set_timeout(iscsi_, options_.command_timeout_seconds);
  }
  connecting_ = true;
  if (iscsi_full_connect_async(iscsi_, options_.portal.c_str(), options_.lun,
                               &IscsiBackend::ConnectCallback, this) != 0) {
    DropContext("connect failed", iscsi_get_error(iscsi_));
  }
}

// AbortSocket makes the coming close(2) of a dropped session's socket a reset (SO_LINGER 0):
// the kernel discards what it has not sent yet. Otherwise, once a cut link returns, it would
// still deliver writes the router already completed through a peer, and the SAN would apply
// them over newer data.
void IscsiBackend::AbortSocket(iscsi_context* iscsi) {
  const int fd = iscsi_get_fd(iscsi);
  if (fd < 0) return;
  struct linger abort_on_close {};
  abort_on_close.l_onoff = 1;
  abort_on_close.l_linger = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
}

void IscsiBackend::ResetSession(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(reset_mutex_);
    reset_reason_ = why;
  }
  reset_requested_.store(true);
  Wake();
}

void IscsiBackend::DropContext(const char* why, const std::string& detail) {
  const bool was_connected = connected_.exchange(false);
  connecting_ = false;
  drop_ = true;
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  VIOS_LOG(kWarning, why)
      .Field("backend", Describe())
      .Field("was_connected", was_connected)
      .Field("error", detail)
      .Field("retry_ms", static_cast<int64_t>(backoff_.count()));
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  std::lock_guard<std::mutex> lock(ready_mutex_);
  last_error_ = detail.empty() ? why : detail;
}

void IscsiBackend::ConnectCallback(iscsi_context* iscsi, int status, void* data, void* self) {
  (void)data;
  auto* b = static_cast<IscsiBackend*>(self);
  if (iscsi != b->iscsi_) {
    return;
  }
  if (status != SCSI_STATUS_GOOD) {
    b->DropContext(b->connected_.load() ? "session lost" : "login failed", iscsi_get_error(iscsi));
    return;
  }
  if (iscsi_readcapacity16_task(iscsi, b->options_.lun, &IscsiBackend::CapacityCallback, b) ==
      nullptr) {
    b->DropContext("READ CAPACITY failed", iscsi_get_error(iscsi));
  }
}

void IscsiBackend::CapacityCallback(iscsi_context* iscsi, int status, void* data, void* self) {
  auto* b = static_cast<IscsiBackend*>(self);
  auto* task = static_cast<scsi_task*>(data);
  scsi_readcapacity16* rc16 = nullptr;
  if (status == SCSI_STATUS_GOOD) {
    rc16 = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(task));
  }
  if (rc16 == nullptr) {
    scsi_free_scsi_task(task);
    b->DropContext("READ CAPACITY failed", iscsi_get_error(iscsi));
    return;
  }
  b->block_size_.store(rc16->block_length);
  b->size_.store((rc16->returned_lba + 1) * rc16->block_length);
  b->discard_.store(rc16->lbpme != 0);
  scsi_free_scsi_task(task);
  b->connecting_ = false;
  b->connected_.store(true);
  b->backoff_ = b->options_.backoff_initial;
  b->logins_.fetch_add(1);
  VIOS_LOG(kInfo, "iscsi backend logged in")
      .Field("backend", b->Describe())
      .Field("initiator", b->options_.initiator_name)
      .Field("size", b->size_.load())
      .Field("discard", b->discard_.load());
  std::lock_guard<std::mutex> lock(b->ready_mutex_);
  b->ready_ = true;
  b->ready_cv_.notify_all();
}

void IscsiBackend::Issue(IoRequest* request) {
  const uint64_t length = request->ByteLength();
  if (request->op != IoOp::kFlush &&
      (request->offset > SizeBytes() || length > SizeBytes() - request->offset ||
       request->offset % BlockSize() != 0 || length % BlockSize() != 0)) {
    request->result = -EINVAL;
    request->completion->IoDone(request);
    return;
  }
  if (length == 0 && request->op != IoOp::kFlush) {
    request->result = 0;
    request->completion->IoDone(request);
    return;
  }
  Op* op = NewOp();
  op->request = request;
  op->done = 0;
  op->retries = 0;
  op->zero_writes = false;
  IssueStep(op);
}

void IscsiBackend::IssueStep(Op* op) {
  IoRequest* r = op->request;
  const uint32_t bs = BlockSize();
  const int lun = options_.lun;
  const uint64_t lba = (r->offset + op->done) / bs;
  const uint64_t left = r->ByteLength() - op->done;
  scsi_task* task = nullptr;
  switch (r->op) {
    case IoOp::kRead:
    case IoOp::kWrite: {
      const bool write = r->op == IoOp::kWrite;
      op->chunk = left;
      op->iov =
          write ? scsi_iovec{const_cast<uint8_t*>(r->write_buffer.data()), r->write_buffer.size()}
                : scsi_iovec{r->read_buffer.data(), r->read_buffer.size()};
      PrepareReadWrite16(op, write, lba, static_cast<uint32_t>(left / bs),
                         static_cast<uint32_t>(left));
      if (iscsi_scsi_command_async(iscsi_, lun, &op->task, &IscsiBackend::CommandCallback, nullptr,
                                   op) == 0) {
        task = &op->task;
      }
      break;
    }
    case IoOp::kFlush:
      op->chunk = 0;
      task = iscsi_synchronizecache16_task(iscsi_, lun, 0, 0, 0, 0, &IscsiBackend::CommandCallback,
                                           op);
      break;
    case IoOp::kDiscard:
    case IoOp::kWriteZeroes:
      if (op->zero_writes) {
        op->chunk = std::min<uint64_t>(left, kZeroChunk);
        op->iov = {const_cast<uint8_t*>(Zeroes().data()), op->chunk};
        task =
            iscsi_write16_iov_task(iscsi_, lun, lba, nullptr, static_cast<uint32_t>(op->chunk), bs,
                                   0, 0, 0, 0, 0, &IscsiBackend::CommandCallback, op, &op->iov, 1);
      } else if (r->op == IoOp::kDiscard) {
        op->chunk = std::min<uint64_t>(left, kMaxUnmapBlocks * bs);
        op->unmap = {lba, static_cast<uint32_t>(op->chunk / bs)};
        task =
            iscsi_unmap_task(iscsi_, lun, 0, 0, &op->unmap, 1, &IscsiBackend::CommandCallback, op);
      } else {
        op->chunk = std::min<uint64_t>(left, kMaxWriteSameBlocks * bs);
        task = iscsi_writesame16_task(iscsi_, lun, lba, const_cast<uint8_t*>(Zeroes().data()), bs,
                                      static_cast<uint32_t>(op->chunk / bs), 0, 0, 0, 0,
                                      &IscsiBackend::CommandCallback, op);
      }
      break;
  }
  if (task == nullptr) {
    r->result = -ENOMEM;
    FreeOp(op);
    r->completion->IoDone(r);
  }
}

void IscsiBackend::CommandCallback(iscsi_context* iscsi, int status, void* data, void* op) {
  (void)iscsi;
  auto* o = static_cast<Op*>(op);
  o->backend->OpDone(o, status, data);
}

void IscsiBackend::OpDone(Op* op, int status, void* data) {
  auto* task = static_cast<scsi_task*>(data);
  IoRequest* r = op->request;
  int result = 0;
  bool retry = false;
  switch (status) {
    case SCSI_STATUS_GOOD:
      break;
    case SCSI_STATUS_CHECK_CONDITION:
      if (task != nullptr && task->sense.key == SCSI_SENSE_UNIT_ATTENTION &&
          op->retries < kUnitAttentionRetries) {
        ++op->retries;  // After a (re)login the target reports a unit attention once.
        retry = true;
      } else if (task != nullptr && task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST &&
                 (r->op == IoOp::kDiscard || r->op == IoOp::kWriteZeroes) && !op->zero_writes) {
        op->zero_writes = true;  // No UNMAP / WRITE SAME at the target: zero explicitly.
        retry = true;
      } else if (task != nullptr && task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST) {
        result = -EINVAL;
      } else {
        result = -EIO;
      }
      break;
    case SCSI_STATUS_RESERVATION_CONFLICT:
      result = -EACCES;
      break;
    case SCSI_STATUS_BUSY:
    case SCSI_STATUS_TASK_SET_FULL:
      result = -EBUSY;
      break;
    case SCSI_STATUS_TIMEOUT:
      result = -ETIMEDOUT;
      break;
    default:  // CANCELLED, ERROR: the session is gone.
      result = -ENOTCONN;
      break;
  }
  if (task == &op->task) {
    std::free(task->datain.data);  // Sense data on CHECK CONDITION: a plain malloc in libiscsi.
    task->datain.data = nullptr;
  } else if (task != nullptr) {
    scsi_free_scsi_task(task);
  }
  if (retry && iscsi_ != nullptr && !stop_.load()) {
    IssueStep(op);
    return;
  }
  if (result == 0) {
    op->done += op->chunk;
    if (op->done < r->ByteLength() && iscsi_ != nullptr) {
      op->retries = 0;
      IssueStep(op);
      return;
    }
  }
  r->result = result;
  FreeOp(op);
  r->completion->IoDone(r);
}

}  // namespace vios::backend
