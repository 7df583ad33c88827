// The serving end of the peer data channel: DataServer and its connections (peer_data.h).
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

// Conn: one accepted connection and its thread.
class DataServer::Conn {
 public:
  Conn(DataServer* server, int fd) : server_(server), fd_(fd) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Conn() {
    if (thread.joinable()) thread.join();
    if (pipe_ == nullptr && fd_ >= 0) ::close(fd_);  // never run: Run did not start
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  void Run();
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    WakeFd(wake_fd_);
  }
  bool finished() const { return finished_.load(); }

  std::thread thread;

 private:
  // Op: one request inside a backend. Pooled; buffer holds a write's data or a read's result.
  struct Op final : backend::IoCompletion {
    Conn* conn = nullptr;
    uint64_t id = 0;
    uint8_t proto_op = 0;
    backend::IoRequest io;
    std::unique_ptr<uint8_t[]> buffer;
    size_t capacity = 0;
    void Reserve(size_t n) {
      if (capacity < n) {
        buffer.reset(new uint8_t[n]);
        capacity = n;
      }
    }
    void IoDone(backend::IoRequest* /*request*/) override { conn->OpDone(this); }
  };

  void OpDone(Op* op) {
    // The wake-up is under the lock too: once the loop has taken the last op (under the lock),
    // no backend thread is still inside OpDone, so the connection may end and be destroyed.
    std::lock_guard<std::mutex> lock(mu_);
    done_.push_back(op);
    if (!wake_pending_.exchange(true)) WakeFd(wake_fd_);
  }
  // Parse handles the complete frames in the input; false on a protocol error (error_ set).
  bool Parse();
  // ReadAndParse reads what the socket has and handles it; false when reading must stop.
  bool ReadAndParse();
  // Submit runs a prepared request on the device (or answers ENOTCONN if it went away).
  void Submit(Op* op);
  void Answer(const DataHeader& request, int error) {
    DataHeader a;
    a.kind = DataKind::kResponse;
    a.op = request.op;
    a.id = request.id;
    a.error = error;
    pipe_->Append(a, nullptr, 0);
  }
  Op* TakeOp() {
    if (free_ops_.empty()) {
      all_ops_.push_back(std::make_unique<Op>());
      all_ops_.back()->conn = this;
      return all_ops_.back().get();
    }
    Op* op = free_ops_.back();
    free_ops_.pop_back();
    return op;
  }

  DataServer* const server_;
  int fd_;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> finished_{false};
  std::unique_ptr<TlsPipe> pipe_;
  std::string identity_;
  std::string pool_, backend_;
  bool bound_ = false;
  std::string error_;  // why reading stopped
  uint32_t inside_ = 0;
  Op* receiving_ = nullptr;  // a write whose data is arriving through the pipe's sink
  // Answered reads whose data the pipe sends from their buffer, with the pipe's Appended()
  // position at their end (loop thread only).
  std::deque<std::pair<uint64_t, Op*>> sending_;
  std::vector<std::unique_ptr<Op>> all_ops_;
  std::vector<Op*> free_ops_;
  std::atomic<uint64_t>* served_ = nullptr;

  std::mutex mu_;
  std::vector<Op*> done_;  // guarded by mu_
  bool stop_ = false;      // guarded by mu_
};

void DataServer::Conn::Submit(Op* op) {
  IoStreamHost* host = server_->options_.host;
  backend::BlockDevice* device = host->LocalDevice(pool_, backend_);
  if (device == nullptr) {  // the backend went away: a path error, the caller goes elsewhere
    DataHeader h;
    h.op = op->proto_op;
    h.id = op->id;
    Answer(h, ENOTCONN);
    free_ops_.push_back(op);
    return;
  }
  ++inside_;
  host->IoStarted();
  device->Submit(&op->io);
}

bool DataServer::Conn::ReadAndParse() {
  // A bounded number of reads, so answers are sent in between.
  for (int i = 0; i < 256; ++i) {
    if (inside_ >= server_->options_.max_in_flight || pipe_->OutBytes() >= kMaxOutBuffered) break;
    const int r = pipe_->ReadSome();
    if (r < 0) {
      // Requests that were not whole when the connection ended are not run: the client has
      // failed them and may have sent them elsewhere.
      error_ = pipe_->error();
      if (pipe_->violated()) server_->options_.host->IoRefused(identity_, error_);
      return false;
    }
    if (r == 0) break;
    if (receiving_ != nullptr && !pipe_->SinkActive()) {
      Op* op = receiving_;
      receiving_ = nullptr;
      Submit(op);
    }
    if (!Parse()) {
      pipe_->Flush();  // best effort: a refused hello's answer says why
      return false;
    }
  }
  return true;
}

bool DataServer::Conn::Parse() {
  IoStreamHost* host = server_->options_.host;
  if (pipe_->SinkActive()) return true;  // a payload is still arriving
  while (pipe_->in_size() >= kDataHeaderBytes && inside_ < server_->options_.max_in_flight &&
         pipe_->OutBytes() < kMaxOutBuffered) {
    DataHeader h;
    std::string bad = DecodeDataHeader(pipe_->in_data(), &h);
    if (bad.empty()) {
      const uint64_t limit = !bound_ ? kMaxHelloBytes
                             : h.kind == DataKind::kRequest &&
                                     h.op == static_cast<uint8_t>(vios::peer::v1::IO_OP_WRITE)
                                 ? host->MaxIoBytes()
                                 : 0;
      if (!bound_ && h.kind != DataKind::kHello) {
        bad = "the first frame is not a hello";
      } else if (bound_ && h.kind != DataKind::kRequest && h.kind != DataKind::kPing) {
        bad = "unexpected frame kind " + std::to_string(static_cast<int>(h.kind));
      } else if (h.data_bytes > limit) {
        bad = "frame carries " + std::to_string(h.data_bytes) + " data bytes, at most " +
              std::to_string(limit) + " allowed";
      }
    }
    if (!bad.empty()) {
      error_ = "protocol error: " + bad;
      host->IoRefused(identity_, error_);
      return false;
    }
    const size_t frame = kDataHeaderBytes + h.data_bytes;
    const bool whole = pipe_->in_size() >= frame;
    // Only a large write is taken in before its data arrived (into its op's buffer, below).
    if (!whole && (h.kind != DataKind::kRequest || h.data_bytes < kDirectPayload)) return true;
    const uint8_t* data = pipe_->in_data() + kDataHeaderBytes;
    if (h.kind == DataKind::kHello) {
      const std::string text(reinterpret_cast<const char*>(data), h.data_bytes);
      const size_t nl = text.find('\n');
      DataHeader ack;
      ack.kind = DataKind::kHelloAck;
      ack.id = h.id;
      if (nl == std::string::npos) {
        ack.error = EINVAL;
      } else {
        pool_ = text.substr(0, nl);
        backend_ = text.substr(nl + 1);
        ack.error = host->LocalDevice(pool_, backend_) != nullptr ? 0 : ENOTCONN;
      }
      const bool integrity = ack.error == 0 && server_->allow_integrity_.load() &&
                             h.op == static_cast<uint8_t>(DataProtection::kIntegrity);
      if (integrity) ack.op = h.op;
      pipe_->Append(ack, nullptr, 0);
      pipe_->Consume(frame);
      if (integrity && !pipe_->StartIntegrity(true)) {
        error_ = pipe_->error();
        host->IoRefused(identity_, error_);
        return false;
      }
      if (ack.error != 0) {
        error_ =
            "hello refused: " + (nl == std::string::npos ? std::string("no \"pool\\nbackend\"")
                                                         : "no backend " + pool_ + "/" + backend_);
        host->IoRefused(identity_, error_);
        return false;
      }
      bound_ = true;
      continue;
    }
    if (h.kind == DataKind::kPing) {
      DataHeader pong;
      pong.kind = DataKind::kPong;
      pong.id = h.id;
      pipe_->Append(pong, nullptr, 0);
      pipe_->Consume(frame);
      continue;
    }
    // A request.
    backend::BlockDevice* device = host->LocalDevice(pool_, backend_);
    const auto proto_op = static_cast<vios::peer::v1::IoOp>(h.op);
    const std::string invalid = device == nullptr
                                    ? ""
                                    : ValidateIoFields(proto_op, h.offset, h.length, h.data_bytes,
                                                       *device, host->MaxIoBytes());
    if (device == nullptr || !invalid.empty()) {
      if (!whole) return true;  // answered once all of it is in (bounded: max_io_bytes)
      if (device == nullptr) {
        Answer(h, ENOTCONN);  // the backend went away: a path error, the caller goes elsewhere
      } else {
        host->IoRefused(identity_, invalid);
        Answer(h, EINVAL);
      }
      pipe_->Consume(frame);
      continue;
    }
    Op* op = TakeOp();
    op->id = h.id;
    op->proto_op = h.op;
    op->io = backend::IoRequest{};
    ToBackendOp(proto_op, &op->io.op);
    op->io.offset = h.offset;
    op->io.length = h.length;
    if (op->io.op == backend::IoOp::kRead) {
      op->Reserve(h.length);
      op->io.read_buffer = std::span<uint8_t>(op->buffer.get(), h.length);
    } else if (op->io.op == backend::IoOp::kWrite) {
      op->Reserve(h.data_bytes);
      op->io.write_buffer = std::span<const uint8_t>(op->buffer.get(), h.data_bytes);
      if (!whole) {
        // The rest of the data goes straight into the op's buffer; submitted once it is in.
        const size_t have = pipe_->in_size() - kDataHeaderBytes;
        std::memcpy(op->buffer.get(), data, have);
        pipe_->Consume(pipe_->in_size());
        pipe_->SetSink(op->buffer.get() + have, h.data_bytes - have);
        op->io.completion = op;
        receiving_ = op;
        return true;
      }
      std::memcpy(op->buffer.get(), data, h.data_bytes);
    }
    op->io.completion = op;
    pipe_->Consume(frame);
    Submit(op);
  }
  return true;
}

void DataServer::Conn::Run() {
  const DataServerOptions& o = server_->options_;
  IoStreamHost* host = o.host;
  const auto hello_deadline = Clock::now() + o.handshake_timeout;
  std::string error;
  SslCtxPtr ctx = MakeDataTlsContext(o.tls, true, &error);
  SSL* ssl = ctx ? SSL_new(ctx.get()) : nullptr;
  if (ssl == nullptr) {
    VIOS_LOG(kError, "peer data connection refused").Field("error", error);
    ::close(fd_);
    fd_ = -1;
    finished_ = true;
    return;
  }
  SSL_set_fd(ssl, fd_);
  pipe_ = std::make_unique<TlsPipe>(fd_, ssl);  // owns fd_ and ssl from here
  if (!Handshake(ssl, fd_, true, hello_deadline, &error)) {
    VIOS_LOG(kWarning, "peer data handshake failed").Field("error", error);
    pipe_.reset();
    fd_ = -1;
    finished_ = true;
    return;
  }
  identity_ = PeerCommonName(ssl);
  served_ = &host->Served(identity_);

  bool reading = true;
  std::vector<Op*> ready;
  while (true) {
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready.swap(done_);
      stop = stop_;
    }
    for (Op* op : ready) {
      DataHeader a;
      a.kind = DataKind::kResponse;
      a.op = op->proto_op;
      a.id = op->id;
      const int result = op->io.result;
      a.error = result < 0 ? -result : 0;
      const bool data = result == 0 && op->io.op == backend::IoOp::kRead;
      a.data_bytes = data ? static_cast<uint32_t>(op->io.read_buffer.size()) : 0;
      if (reading && a.data_bytes != 0) {
        // Sent from the op's buffer: the op is reused only once that much has been flushed.
        sending_.emplace_back(pipe_->AppendRef(a, op->buffer.get(), a.data_bytes), op);
      } else {
        if (reading) pipe_->Append(a, nullptr, 0);
        free_ops_.push_back(op);
      }
      --inside_;
      served_->fetch_add(1, std::memory_order_relaxed);
      host->IoFinished();
    }
    ready.clear();
    if (stop && reading) {
      reading = false;
      error_ = "server stopping";
    }
    if (reading && !Parse()) {  // frames left in the input while at the in-flight limit
      reading = false;
      pipe_->Flush();  // best effort: a refused hello's answer says why
    }
    if (reading && !bound_ && Clock::now() >= hello_deadline) {
      reading = false;
      error_ = "no hello within the handshake timeout";
    }
    if (reading && !pipe_->Flush()) {
      reading = false;
      error_ = pipe_->error();
    }
    while (!sending_.empty() && sending_.front().first <= pipe_->Flushed()) {
      free_ops_.push_back(sending_.front().second);
      sending_.pop_front();
    }
    if (!reading) {
      if (inside_ == 0) break;
      // Requests still inside a backend: wait for them (their answers have no taker).
      pollfd p{wake_fd_, POLLIN, 0};
      ::poll(&p, 1, 100);
      if (p.revents & POLLIN) {
        DrainFd(wake_fd_);  // first: a wake-up after it is seen (its flag store comes later)
        wake_pending_ = false;
      }
      continue;
    }
    short events = 0;
    if (inside_ < o.max_in_flight && pipe_->OutBytes() < kMaxOutBuffered) events |= POLLIN;
    if (pipe_->WantsWrite()) events |= POLLOUT;
    pollfd p[2] = {{pipe_->fd(), events, 0}, {wake_fd_, POLLIN, 0}};
    int timeout = bound_ ? -1 : std::max(1, Remaining(hello_deadline));
    if ((events & POLLIN) && pipe_->HasPending()) timeout = 0;
    ::poll(p, 2, timeout);
    if (p[1].revents & POLLIN) {
      DrainFd(wake_fd_);  // first: a wake-up after it is seen (its flag store comes later)
      wake_pending_ = false;
    }
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) ||
        ((events & POLLIN) && pipe_->HasPending())) {
      if (!ReadAndParse()) reading = false;
    }
  }
  if (receiving_ != nullptr) {  // its data never completed: not run
    free_ops_.push_back(receiving_);
    receiving_ = nullptr;
  }
  VIOS_LOG(kInfo, "peer data connection closed")
      .Field("identity", identity_)
      .Field("backend", pool_ + "/" + backend_)
      .Field("reason", error_);
  pipe_.reset();  // closes now, not when the accept loop next reaps this thread
  fd_ = -1;
  finished_ = true;
}

DataServer::DataServer(DataServerOptions options)
    : options_(std::move(options)), allow_integrity_(options_.allow_integrity) {}

DataServer::~DataServer() { Stop(); }

void DataServer::Start() {
  util::IgnoreSigpipe();  // a peer closing its end while we write must not kill the process
  std::string host, port;
  if (!SplitHostPort(options_.listen_address, &host, &port)) {
    throw PeerError(3, "peer data channel: bad listen address " + options_.listen_address);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    throw PeerError(3, "peer data channel: cannot resolve " + options_.listen_address);
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    ::freeaddrinfo(found);
    throw PeerError(14,
                    "peer data channel: cannot listen on " + options_.listen_address + ": " + why);
  }
  ::freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listen_fd_ = fd;
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

void DataServer::Reap(bool all) {
  std::list<std::unique_ptr<Conn>> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (all || (*it)->finished()) {
        gone.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  gone.clear();  // joins their threads
}

void DataServer::AcceptLoop() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, 1000) < 0 && errno != EINTR) break;
    if (p[1].revents & POLLIN) break;
    Reap(false);
    if (!(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    TuneSocket(fd);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      continue;
    }
    if (conns_.size() >= options_.max_connections) {
      // Each connection is a thread: a flood of connections (authenticated or not) must not
      // exhaust them. Real peers need one per backend they reroute.
      ::close(fd);
      const uint64_t refused = ++refused_;
      if ((refused & (refused - 1)) == 0) {  // 1, 2, 4, 8...: a flood does not flood the log
        VIOS_LOG(kWarning, "peer data connection refused: too many connections")
            .Field("limit", options_.max_connections)
            .Field("refused_total", refused);
      }
      continue;
    }
    ++accepted_;
    conns_.push_back(std::make_unique<Conn>(this, fd));
    Conn* conn = conns_.back().get();
    conn->thread = std::thread([conn] { conn->Run(); });
  }
}

void DataServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (listen_fd_ < 0) return;
    stopping_ = true;
    for (auto& conn : conns_) conn->Stop();
  }
  WakeFd(stop_fd_);
  if (accept_thread_.joinable()) accept_thread_.join();
  Reap(true);  // each connection ends once none of its requests is inside a backend
  ::close(listen_fd_);
  ::close(stop_fd_);
  listen_fd_ = stop_fd_ = -1;
}

}  // namespace vios::agent::peer
