// The client end of the peer data channel: DataClient (peer_data.h).
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"
#include "common/util/sigpipe.h"
#include "node-agent/peer/peer_data.h"
#include "node-agent/peer/peer_data_internal.h"

namespace vios::agent::peer {

using namespace detail;

std::unique_ptr<DataClient> DataClient::Connect(const DataClientOptions& options, Done done,
                                                std::string* error) {
  const auto deadline = Clock::now() + options.connect_timeout;
  const std::string where = options.host + ":" + std::to_string(options.port);
  std::unique_ptr<TlsPipe> pipe =
      ConnectTls(options.host, options.port, options.server_name, options.tls, deadline, error);
  if (!pipe) return nullptr;
  const int fd = pipe->fd();
  // Bind the connection to the backend and wait for the answer.
  const std::string hello = options.pool + "\n" + options.backend;
  DataHeader h;
  h.kind = DataKind::kHello;
  h.op = static_cast<uint8_t>(options.protection);
  h.data_bytes = static_cast<uint32_t>(hello.size());
  pipe->Append(h, reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
  while (true) {
    // An answer that arrived just before the connection ended (a refusal) is read first.
    const bool alive = pipe->Flush() && pipe->Fill();
    if (!alive && pipe->in_size() < kDataHeaderBytes) {
      *error = "peer data channel " + where + ": " + pipe->error();
      return nullptr;
    }
    if (pipe->in_size() >= kDataHeaderBytes) {
      DataHeader ack;
      std::string bad = DecodeDataHeader(pipe->in_data(), &ack);
      if (bad.empty() && (ack.kind != DataKind::kHelloAck || ack.data_bytes != 0)) {
        bad = "the answer to hello is not a hello-ack";
      } else if (bad.empty() && ack.op != 0 &&
                 (ack.op != static_cast<uint8_t>(DataProtection::kIntegrity) ||
                  options.protection != DataProtection::kIntegrity)) {
        bad = "the hello-ack grants protection " + std::to_string(ack.op) + ", not asked for";
      }
      if (!bad.empty()) {
        *error = "peer data channel " + where + ": protocol error: " + bad;
        return nullptr;
      }
      if (ack.error != 0) {
        *error = "peer data channel " + where + ": the peer refused backend " + options.pool + "/" +
                 options.backend + ": " + std::strerror(ack.error);
        return nullptr;
      }
      pipe->Consume(kDataHeaderBytes);
      if (ack.op == static_cast<uint8_t>(DataProtection::kIntegrity) &&
          !pipe->StartIntegrity(false)) {
        *error = "peer data channel " + where + ": " + pipe->error();
        return nullptr;
      }
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (pipe->WantsWrite() ? POLLOUT : 0)), 0};
    const int left = Remaining(deadline);
    if (left == 0 || ::poll(&p, 1, left) == 0) {
      *error = "peer data channel " + where + ": no answer to hello in time";
      return nullptr;
    }
  }
  return std::unique_ptr<DataClient>(new DataClient(std::move(pipe), options, std::move(done)));
}

DataClient::DataClient(std::unique_ptr<TlsPipe> pipe, const DataClientOptions& options, Done done)
    : options_(options),
      done_(std::move(done)),
      protection_(pipe->integrity() ? DataProtection::kIntegrity : DataProtection::kEncrypt),
      pipe_(std::move(pipe)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Loop(); });
}

DataClient::~DataClient() {
  Break("closed");
  thread_.join();
  ::close(wake_fd_);
}

void DataClient::Wake() {
  if (!wake_pending_.exchange(true)) WakeFd(wake_fd_);
}

void DataClient::Submit(backend::IoRequest* request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closing_) {
      submitted_.push_back(request);
      request = nullptr;
    }
  }
  if (request != nullptr) {
    done_(request, -ECONNRESET);
    return;
  }
  // From a completion on the loop thread itself (a caller resubmitting from its callback) no
  // wake-up is needed: the loop takes new requests before it next waits.
  if (std::this_thread::get_id() != thread_.get_id()) Wake();
}

bool DataClient::Ping() {
  if (pings_sent_.load() != pongs_seen_.load()) {
    Break("ping unanswered");
    return false;
  }
  pings_sent_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ping_due_ = true;
  }
  Wake();
  return true;
}

void DataClient::Break(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (break_request_.empty()) break_request_ = reason;
  }
  Wake();
}

void DataClient::FailAll(std::vector<std::pair<backend::IoRequest*, int>>* done, int result) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.request == nullptr) continue;
    done->emplace_back(slot.request, result);
    slot.request = nullptr;
    ++slot.generation;
    free_slots_.push_back(i);
  }
  in_slots_ = 0;
}

void DataClient::Finish(uint32_t index, int result,
                        std::vector<std::pair<backend::IoRequest*, int>>* done) {
  Slot& slot = slots_[index];
  done->emplace_back(slot.request, result);
  slot.request = nullptr;
  ++slot.generation;
  free_slots_.push_back(index);
  --in_slots_;
}

void DataClient::ParseAnswers(std::vector<std::pair<backend::IoRequest*, int>>* done,
                              std::string* why) {
  if (pipe_->SinkActive()) return;  // a read's data is still arriving
  while (pipe_->in_size() >= kDataHeaderBytes) {
    DataHeader h;
    std::string bad = DecodeDataHeader(pipe_->in_data(), &h);
    if (bad.empty() && h.kind != DataKind::kResponse && h.kind != DataKind::kPong) {
      bad = "unexpected frame kind " + std::to_string(static_cast<int>(h.kind));
    }
    const uint32_t index = static_cast<uint32_t>(h.id & 0xffffffffu);
    Slot* slot = nullptr;
    if (bad.empty() && h.kind == DataKind::kResponse) {
      if (index < slots_.size() && slots_[index].request != nullptr &&
          slots_[index].generation == static_cast<uint32_t>(h.id >> 32)) {
        slot = &slots_[index];
      } else {
        bad = "an answer to no request in flight";
      }
    }
    if (bad.empty() && h.data_bytes != 0) {
      const bool read_ok = slot != nullptr && slot->request->op == backend::IoOp::kRead &&
                           h.error == 0 && h.data_bytes == slot->request->read_buffer.size();
      if (!read_ok) bad = "an answer with unexpected data";
    }
    if (bad.empty() && slot != nullptr && slot->request->op == backend::IoOp::kRead &&
        h.error == 0 && h.data_bytes != slot->request->read_buffer.size()) {
      bad = "a read answer of the wrong size";
    }
    if (!bad.empty()) {
      *why = "protocol error: " + bad;
      return;
    }
    const uint8_t* data = pipe_->in_data() + kDataHeaderBytes;
    if (pipe_->in_size() < kDataHeaderBytes + h.data_bytes) {
      if (h.data_bytes < kDirectPayload) return;  // the rest has not arrived yet
      // A large read: the rest goes straight into the caller's buffer.
      const size_t have = pipe_->in_size() - kDataHeaderBytes;
      std::memcpy(slot->request->read_buffer.data(), data, have);
      pipe_->Consume(pipe_->in_size());
      pipe_->SetSink(slot->request->read_buffer.data() + have, h.data_bytes - have);
      receiving_ = index;
      return;
    }
    if (h.kind == DataKind::kPong) {
      pongs_seen_.store(h.id);
    } else {
      if (h.data_bytes != 0) std::memcpy(slot->request->read_buffer.data(), data, h.data_bytes);
      int error = h.error;
      if (error < 0 || error > 4095) error = EIO;  // not an errno: still a failure
      Finish(index, -error, done);
    }
    pipe_->Consume(kDataHeaderBytes + h.data_bytes);
  }
}

void DataClient::Loop() {
  const auto scan = std::max(std::chrono::milliseconds(5),
                             std::min(std::chrono::milliseconds(50), options_.io_deadline / 10));
  std::vector<backend::IoRequest*> batch;
  std::vector<std::pair<backend::IoRequest*, int>> done;
  std::string why;
  auto next_scan = Clock::now() + scan;
  while (why.empty()) {
    bool ping = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(submitted_);
      ping = ping_due_;
      ping_due_ = false;
      why = break_request_;
    }
    if (!why.empty()) {
      for (backend::IoRequest* r : batch) done.emplace_back(r, -ECONNRESET);
      batch.clear();
      break;
    }
    const auto deadline = Clock::now() + options_.io_deadline;
    for (backend::IoRequest* r : batch) {
      const uint32_t index = TakeSlot(&slots_, &free_slots_);
      Slot& slot = slots_[index];
      slot.request = r;
      slot.deadline = deadline;
      ++in_slots_;
      DataHeader h;
      h.kind = DataKind::kRequest;
      h.op = static_cast<uint8_t>(ToProtoOp(r->op));
      h.id = (static_cast<uint64_t>(slot.generation) << 32) | index;
      h.offset = r->offset;
      h.length = r->ByteLength();
      if (r->op == backend::IoOp::kWrite) {
        h.data_bytes = static_cast<uint32_t>(r->write_buffer.size());
        // Sent from the caller's buffer: it stays valid until the request completes, which is
        // after the peer has all of it (or after this connection ended: nothing more is sent).
        pipe_->AppendRef(h, r->write_buffer.data(), r->write_buffer.size());
      } else {
        pipe_->Append(h, nullptr, 0);
      }
    }
    batch.clear();
    if (ping) {
      DataHeader h;
      h.kind = DataKind::kPing;
      h.id = pings_sent_.load();
      pipe_->Append(h, nullptr, 0);
    }
    if (!pipe_->Flush()) {
      why = pipe_->error();
      break;
    }
    short events = POLLIN;
    if (pipe_->WantsWrite()) events |= POLLOUT;
    pollfd p[2] = {{pipe_->fd(), events, 0}, {wake_fd_, POLLIN, 0}};
    const int timeout = pipe_->HasPending() ? 0
                        : in_slots_ > 0     ? static_cast<int>(scan.count())
                                            : -1;
    ::poll(p, 2, timeout);
    if (p[1].revents & POLLIN) {
      DrainFd(wake_fd_);  // first: a wake-up after it is seen (its flag store comes later)
      wake_pending_ = false;
    }
    bool ended = false;
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) || pipe_->HasPending()) {
      // Answers: complete every whole frame received, even when the connection has just ended.
      for (int i = 0; i < 256 && why.empty(); ++i) {
        const int r = pipe_->ReadSome();
        if (r < 0) {
          ended = true;
          break;
        }
        if (r == 0) break;
        if (receiving_ != kNoSlot && !pipe_->SinkActive()) {
          Finish(receiving_, 0, &done);  // its data is in: read straight into its buffer
          receiving_ = kNoSlot;
        }
        ParseAnswers(&done, &why);
      }
    }
    if (why.empty() && ended) why = pipe_->error();
    const auto now = Clock::now();
    if (why.empty() && in_slots_ > 0 && now >= next_scan) {
      next_scan = now + scan;
      for (uint32_t i = 0; i < slots_.size(); ++i) {
        Slot& slot = slots_[i];
        if (slot.request == nullptr || slot.deadline > now) continue;
        // Not answered in time: this request fails now; a peer that stops answering one
        // request is not trusted with the next, so the connection ends too (and nothing more
        // is read, into this request's buffer or any other).
        Finish(i, -ETIMEDOUT, &done);
        why = "peer I/O deadline exceeded";
      }
    }
    if (!why.empty()) break;  // completed below, once broken() is true
    for (const auto& [r, result] : done) done_(r, result);
    done.clear();
  }
  // The end: nothing new is accepted, everything outstanding fails as a path error.
  break_reason_ = why;
  broken_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    for (backend::IoRequest* r : submitted_) done.emplace_back(r, -ECONNRESET);
    submitted_.clear();
  }
  FailAll(&done, -ECONNRESET);
  if (why != "closed") {
    VIOS_LOG(kInfo, "peer data connection ended")
        .Field("peer", options_.server_name)
        .Field("backend", options_.pool + "/" + options_.backend)
        .Field("reason", why)
        .Field("failed_requests", done.size());
  }
  for (const auto& [r, result] : done) done_(r, result);
}

}  // namespace vios::agent::peer
