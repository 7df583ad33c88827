// The peer data channel: frames, TLS plumbing, the serving end and the client end (peer_data.h).
#include "node-agent/peer/peer_data.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"
#include "common/util/sigpipe.h"

namespace vios::agent::peer {
namespace {

using Clock = std::chrono::steady_clock;

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// SslErrors drains OpenSSL's error queue into one line.
std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// Wake / Drain: an eventfd as a level a thread sleeps on in poll.
void WakeFd(int fd) {
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(fd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}
void DrainFd(int fd) {
  uint64_t value;
  while (::read(fd, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

void TuneSocket(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// SplitHostPort accepts "host:port" and "[v6]:port".
bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return true;
}

int Remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Handshake drives the TLS handshake on a non-blocking socket until it completes or deadline.
bool Handshake(SSL* ssl, int fd, bool server, Clock::time_point deadline, std::string* error) {
  while (true) {
    ERR_clear_error();
    const int r = server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (r == 1) return true;
    const int e = SSL_get_error(ssl, r);
    short events;
    if (e == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      const long verify = SSL_get_verify_result(ssl);
      *error = "TLS handshake failed: " +
               (verify != X509_V_OK
                    ? std::string("certificate: ") + X509_verify_cert_error_string(verify)
                    : SslErrors());
      if (error->size() == std::strlen("TLS handshake failed: ")) *error += "connection closed";
      return false;
    }
    pollfd p{fd, events, 0};
    const int left = Remaining(deadline);
    if (left == 0 || ::poll(&p, 1, left) == 0) {
      *error = "TLS handshake timed out";
      return false;
    }
  }
}

// CommonName of the verified peer certificate ("" if none).
std::string PeerCommonName(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  X509_free(cert);
  return buf;
}

constexpr size_t kInitialInBuffer = 256 << 10;
// Payloads at least this large are read straight into their destination (TlsPipe::SetSink)
// when they have not fully arrived with their header.
constexpr uint32_t kDirectPayload = 16u << 10;
// A connection stops reading when this much output is waiting for the socket (backpressure).
constexpr size_t kMaxOutBuffered = 32u << 20;

}  // namespace

void EncodeDataHeader(const DataHeader& h, uint8_t* out) {
  PutU32(out, kDataMagic);
  out[4] = static_cast<uint8_t>(h.kind);
  out[5] = h.op;
  out[6] = 0;
  out[7] = 0;
  PutU32(out + 8, static_cast<uint32_t>(h.error));
  PutU32(out + 12, h.data_bytes);
  PutU64(out + 16, h.id);
  PutU64(out + 24, h.offset);
  PutU64(out + 32, h.length);
}

std::string DecodeDataHeader(const uint8_t* in, DataHeader* h) {
  const uint32_t magic = GetU32(in);
  if (magic != kDataMagic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad frame magic 0x%08x", magic);
    return buf;
  }
  const uint8_t kind = in[4];
  if (kind < static_cast<uint8_t>(DataKind::kHello) ||
      kind > static_cast<uint8_t>(DataKind::kPong)) {
    return "unknown frame kind " + std::to_string(kind);
  }
  if (in[6] != 0 || in[7] != 0) return "reserved frame bytes are not zero";
  h->kind = static_cast<DataKind>(kind);
  h->op = in[5];
  h->error = static_cast<int32_t>(GetU32(in + 8));
  h->data_bytes = GetU32(in + 12);
  h->id = GetU64(in + 16);
  h->offset = GetU64(in + 24);
  h->length = GetU64(in + 32);
  return "";
}

SslCtxPtr MakeDataTlsContext(const PeerTls& tls, bool server, std::string* error) {
  try {
    CheckTlsFiles(tls);  // the same clear errors as the gRPC channel
  } catch (const PeerError& e) {
    *error = e.what();
    return nullptr;
  }
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) {
    *error = "peer data TLS: " + SslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // AES-128-GCM first: hardware-accelerated nearly everywhere and the cheapest per byte.
  SSL_CTX_set_ciphersuites(ctx.get(),
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  // Read ahead: one read() takes in as many records as the socket has (by default OpenSSL reads
  // each record's 5-byte header and body separately: two system calls per 16 KiB). Data it holds
  // that poll cannot see is what TlsPipe::HasPending reports.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_default_read_buffer_len(ctx.get(), 256u << 10);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert_file.c_str()) != 1) {
    *error = "peer data TLS: certificate file " + tls.cert_file + ": " + SslErrors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    *error = "peer data TLS: key file " + tls.key_file + ": " + SslErrors();
    return nullptr;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr) != 1) {
    *error = "peer data TLS: CA file " + tls.ca_file + ": " + SslErrors();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

// --- TlsPipe ---

TlsPipe::TlsPipe(int fd, SSL* ssl) : fd_(fd), ssl_(ssl), in_(kInitialInBuffer) {}

TlsPipe::~TlsPipe() {
  // Best effort close_notify (non-blocking): the other end sees an orderly close.
  if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
  SSL_free(ssl_);
  ::close(fd_);
}

void TlsPipe::AddStaged(const uint8_t* bytes, size_t n) {
  const size_t at = out_.size();
  // insert, not resize + memcpy: no zero-filling pass over the payload first.
  out_.insert(out_.end(), bytes, bytes + n);
  if (!pieces_.empty() && pieces_.back().data == nullptr &&
      pieces_.back().begin + pieces_.back().size == at) {
    pieces_.back().size += n;  // extends the last copied run (small frames share TLS records)
  } else {
    pieces_.push_back(Piece{nullptr, at, n});
  }
  appended_ += n;
}

void TlsPipe::Append(const DataHeader& header, const uint8_t* data, size_t size) {
  uint8_t head[kDataHeaderBytes];
  EncodeDataHeader(header, head);
  AddStaged(head, kDataHeaderBytes);
  if (size != 0) AddStaged(data, size);
}

uint64_t TlsPipe::AppendRef(const DataHeader& header, const uint8_t* data, size_t size) {
  if (size < kDirectPayload) {  // small: copying is cheaper than a TLS record of its own
    Append(header, data, size);
    return appended_;
  }
  uint8_t head[kDataHeaderBytes];
  EncodeDataHeader(header, head);
  AddStaged(head, kDataHeaderBytes);
  pieces_.push_back(Piece{data, 0, size});
  appended_ += size;
  return appended_;
}

bool TlsPipe::Fail(const std::string& what, int ssl_error) {
  if (error_.empty()) {
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      error_ = "connection closed by the peer";
    } else if (ssl_error == SSL_ERROR_SYSCALL) {
      error_ = what + ": " + (errno != 0 ? std::strerror(errno) : "connection closed");
    } else {
      const std::string detail = SslErrors();
      error_ = what + ": " + (detail.empty() ? "TLS error " + std::to_string(ssl_error) : detail);
    }
  }
  return false;
}

bool TlsPipe::Flush() {
  while (!pieces_.empty()) {
    const Piece& piece = pieces_.front();
    const uint8_t* base = piece.data != nullptr ? piece.data : out_.data() + piece.begin;
    const size_t chunk = std::min<size_t>(piece.size - front_sent_, 1u << 30);
    ERR_clear_error();
    errno = 0;
    // A retry after WANT_WRITE passes the same bytes (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: out_
    // may have moved since, and the last copied run may have grown).
    const int r = SSL_write(ssl_, base + front_sent_, static_cast<int>(chunk));
    if (r > 0) {
      front_sent_ += static_cast<size_t>(r);
      flushed_ += static_cast<uint64_t>(r);
      if (front_sent_ == piece.size) {
        pieces_.pop_front();
        front_sent_ = 0;
      }
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return true;
    return Fail("write", e);
  }
  out_.clear();
  return true;
}

int TlsPipe::ReadSome() {
  uint8_t* into;
  size_t room;
  if (sink_left_ != 0) {
    into = sink_;
    room = sink_left_;
  } else {
    if (in_start_ == in_end_) {
      in_start_ = in_end_ = 0;
    } else if (in_.size() - in_end_ < (16u << 10) && in_start_ > 0) {
      std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    if (in_.size() - in_end_ < (16u << 10)) in_.resize(in_.size() * 2);
    into = in_.data() + in_end_;
    room = in_.size() - in_end_;
  }
  ERR_clear_error();
  errno = 0;
  const int r = SSL_read(ssl_, into, static_cast<int>(std::min<size_t>(room, 1u << 30)));
  if (r > 0) {
    if (sink_left_ != 0) {
      sink_ += r;
      sink_left_ -= static_cast<size_t>(r);
    } else {
      in_end_ += static_cast<size_t>(r);
    }
    return 1;
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  Fail("read", e);
  return -1;
}

bool TlsPipe::Fill() {
  while (true) {
    const int r = ReadSome();
    if (r < 0) return false;
    // Enough for now: the caller parses before more arrives (bounds the buffer).
    if (r == 0 || in_end_ - in_start_ >= (4u << 20)) return true;
  }
}

void TlsPipe::Consume(size_t n) { in_start_ += n; }

// --- DataServer ---

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
      pipe_->Append(ack, nullptr, 0);
      pipe_->Consume(frame);
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

DataServer::DataServer(DataServerOptions options) : options_(std::move(options)) {}

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

// --- DataClient ---

std::unique_ptr<TlsPipe> ConnectTls(const std::string& host, uint16_t port,
                                    const std::string& server_name, const PeerTls& tls,
                                    std::chrono::steady_clock::time_point deadline,
                                    std::string* error) {
  util::IgnoreSigpipe();  // a peer closing its end while we write must not kill the process
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    *error = "peer data channel: cannot resolve " + where;
    return nullptr;
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int rc = fd < 0 ? -1 : ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int soerr = ETIMEDOUT;
    if (::poll(&p, 1, std::max(1, Remaining(deadline))) == 1) {
      socklen_t len = sizeof soerr;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    }
    rc = soerr == 0 ? 0 : -1;
    errno = soerr;
  }
  if (rc != 0) {
    *error = "peer data channel: cannot connect to " + where + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return nullptr;
  }
  TuneSocket(fd);
  SslCtxPtr ctx = MakeDataTlsContext(tls, false, error);
  SSL* ssl = ctx ? SSL_new(ctx.get()) : nullptr;
  if (ssl == nullptr) {
    ::close(fd);
    return nullptr;
  }
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, server_name.c_str());  // the certificate must name the member
  auto pipe = std::make_unique<TlsPipe>(fd, ssl);
  if (!Handshake(ssl, fd, false, deadline, error)) {
    *error = "peer data channel " + where + ": " + *error;
    return nullptr;
  }
  return pipe;
}

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
    : options_(options), done_(std::move(done)), pipe_(std::move(pipe)) {
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
