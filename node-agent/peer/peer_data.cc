// The peer data channel: frames, TLS plumbing and TlsPipe (peer_data.h); the serving end is in
// peer_data_server.cc, the client end in peer_data_client.cc.
#include "node-agent/peer/peer_data.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"
#include "common/util/sigpipe.h"
#include "node-agent/peer/peer_data_internal.h"

namespace vios::agent::peer {
namespace {

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

constexpr size_t kInitialInBuffer = 256 << 10;
constexpr size_t kTagBytes = 16;
constexpr char kIntegrityLabel[] = "EXPORTER-vios-data-integrity";

void PutCounter(uint8_t* nonce, uint64_t count) { PutU64(nonce + 4, count); }

}  // namespace

namespace detail {

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

std::string PeerCommonName(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  X509_free(cert);
  return buf;
}

}  // namespace detail

using namespace detail;

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

bool ParseDataProtection(const std::string& text, DataProtection* out) {
  if (text == "encrypt") {
    *out = DataProtection::kEncrypt;
  } else if (text == "integrity") {
    *out = DataProtection::kIntegrity;
  } else {
    return false;
  }
  return true;
}

const char* DataProtectionName(DataProtection protection) {
  return protection == DataProtection::kIntegrity ? "integrity" : "encrypt";
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
  SSL_CTX_set_num_tickets(ctx.get(), 0);  // nothing after the handshake but our own frames
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
  // Best effort close_notify (non-blocking): the other end sees an orderly close. Not once the
  // connection has left TLS records: the other end would read it as a broken chunk.
  if (SSL_is_init_finished(ssl_) && !integrity()) SSL_shutdown(ssl_);
  SSL_free(ssl_);
  ::close(fd_);
}

void TlsPipe::AddStaged(const uint8_t* bytes, size_t n) {
  const size_t at = out_.size();
  // insert, not resize + memcpy: no zero-filling pass over the payload first.
  out_.insert(out_.end(), bytes, bytes + n);
  if (!pieces_.empty() && pieces_.back().data == nullptr && !pieces_.back().sealed &&
      pieces_.back().begin + pieces_.back().size == at &&
      pieces_.back().size + n <= kMaxChunkBytes) {
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
  for (size_t at = 0; at < size; at += kMaxChunkBytes) {
    pieces_.push_back(Piece{data + at, 0, std::min(kMaxChunkBytes, size - at)});
  }
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

bool TlsPipe::FailWith(const std::string& what) {
  if (error_.empty()) error_ = what;
  return false;
}

bool TlsPipe::Flush() {
  if (integrity()) return FlushChunks();
  while (!pieces_.empty()) {
    const Piece& piece = pieces_.front();
    const uint8_t* base = PieceData(piece);
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
  if (integrity()) return ReadChunks();
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

bool TlsPipe::HasPending() const {
  if (!integrity()) return SSL_has_pending(ssl_) == 1;
  const size_t raw = raw_end_ - raw_start_;
  switch (phase_) {
    case Phase::kHead:
      return raw >= 4;
    case Phase::kBody:
      return raw > 0;
    case Phase::kTag:
      return raw >= kTagBytes;
  }
  return false;
}

// --- TlsPipe: integrity mode ---

bool TlsPipe::StartIntegrity(bool server) {
  // The exchange's last TLS record (the hello-ack) goes out first; 40 bytes on a connection
  // that has sent nothing else fit in any socket buffer.
  if (!Flush()) return false;
  if (WantsWrite()) return FailWith("integrity mode: the hello-ack could not be sent at once");
  if (SSL_has_pending(ssl_) == 1 || in_size() != 0) {
    return FailWith("integrity mode: data arrived before the hello exchange completed");
  }
  // Keys: client write key | server write key | client salt | server salt.
  uint8_t km[16 + 16 + 4 + 4];
  if (SSL_export_keying_material(ssl_, km, sizeof km, kIntegrityLabel, sizeof kIntegrityLabel - 1,
                                 nullptr, 0, 0) != 1) {
    return FailWith("integrity mode: cannot export keys: " + SslErrors());
  }
  const uint8_t* mine = server ? km + 16 : km;
  const uint8_t* theirs = server ? km : km + 16;
  std::memcpy(seal_nonce_, server ? km + 36 : km + 32, 4);
  std::memcpy(open_nonce_, server ? km + 32 : km + 36, 4);
  CipherCtxPtr seal(EVP_CIPHER_CTX_new());
  CipherCtxPtr open(EVP_CIPHER_CTX_new());
  const bool ok = seal && open &&
                  EVP_EncryptInit_ex(seal.get(), EVP_aes_128_gcm(), nullptr, mine, nullptr) == 1 &&
                  EVP_DecryptInit_ex(open.get(), EVP_aes_128_gcm(), nullptr, theirs, nullptr) == 1;
  OPENSSL_cleanse(km, sizeof km);
  if (!ok) return FailWith("integrity mode: cannot set up AES-GMAC: " + SslErrors());
  seal_ = std::move(seal);
  open_ = std::move(open);
  raw_.resize(kInitialInBuffer);
  return true;
}

void TlsPipe::Seal(Piece* piece) {
  PutCounter(seal_nonce_, seal_count_++);
  PutU32(piece->head, static_cast<uint32_t>(piece->size));
  int n = 0;
  // GMAC: the bytes are additional authenticated data of an empty AES-GCM message; the tag also
  // covers their length.
  EVP_EncryptInit_ex(seal_.get(), nullptr, nullptr, nullptr, seal_nonce_);
  EVP_EncryptUpdate(seal_.get(), nullptr, &n, PieceData(*piece), static_cast<int>(piece->size));
  uint8_t none[16];
  EVP_EncryptFinal_ex(seal_.get(), none, &n);
  EVP_CIPHER_CTX_ctrl(seal_.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, piece->tag);
  piece->sealed = true;
}

bool TlsPipe::FlushChunks() {
  constexpr int kMaxIov = 96;  // 32 chunks per system call
  while (!pieces_.empty()) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t skip = front_sent_;
    auto add = [&](const uint8_t* p, size_t len) {
      if (skip >= len) {
        skip -= len;
        return;
      }
      iov[n++] = iovec{const_cast<uint8_t*>(p) + skip, len - skip};
      skip = 0;
    };
    for (Piece& piece : pieces_) {
      if (n + 3 > kMaxIov) break;
      if (!piece.sealed) Seal(&piece);
      add(piece.head, sizeof piece.head);
      add(PieceData(piece), piece.size);
      add(piece.tag, kTagBytes);
    }
    const ssize_t w = ::writev(fd_, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return FailWith(std::string("write: ") + std::strerror(errno));
    }
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      const Piece& piece = pieces_.front();
      const size_t whole = sizeof piece.head + piece.size + kTagBytes;
      const size_t take = std::min(left, whole - front_sent_);
      front_sent_ += take;
      left -= take;
      if (front_sent_ == whole) {
        flushed_ += piece.size;
        pieces_.pop_front();
        front_sent_ = 0;
      }
    }
  }
  out_.clear();
  return true;
}

void TlsPipe::ReserveIn(size_t n) {
  if (in_start_ == in_end_) in_start_ = in_end_ = 0;
  if (in_.size() - in_end_ >= n) return;
  if (in_start_ > 0) {
    std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
    in_end_ -= in_start_;
    in_start_ = 0;
  }
  if (in_.size() - in_end_ < n) in_.resize(std::max(in_.size() * 2, in_end_ + n));
}

bool TlsPipe::RecvRaw(int* progress) {
  if (raw_start_ == raw_end_) raw_start_ = raw_end_ = 0;
  if (raw_.size() - raw_end_ < (64u << 10) && raw_start_ > 0) {
    std::memmove(raw_.data(), raw_.data() + raw_start_, raw_end_ - raw_start_);
    raw_end_ -= raw_start_;
    raw_start_ = 0;
  }
  const ssize_t r = ::recv(fd_, raw_.data() + raw_end_, raw_.size() - raw_end_, 0);
  if (r > 0) {
    raw_end_ += static_cast<size_t>(r);
    *progress = 1;
    return true;
  }
  if (r == 0) {
    *progress = -1;
    FailWith("connection closed by the peer");
    return false;
  }
  if (errno == EINTR) return true;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
  *progress = -1;
  FailWith(std::string("read: ") + std::strerror(errno));
  return false;
}

int TlsPipe::ReadChunks() {
  int progress = 0;
  while (true) {
    const size_t raw = raw_end_ - raw_start_;
    if (phase_ == Phase::kHead) {
      if (raw < 4) {
        if (!RecvRaw(&progress)) return progress;
        continue;
      }
      body_len_ = GetU32(raw_.data() + raw_start_);
      raw_start_ += 4;
      if (body_len_ == 0 || body_len_ > kMaxChunkBytes) {
        violated_ = true;
        FailWith("integrity mode: a chunk of " + std::to_string(body_len_) + " bytes (1 to " +
                 std::to_string(kMaxChunkBytes) + " allowed)");
        return -1;
      }
      // A payload the caller waits for is received where it belongs; anything else into in_.
      body_to_sink_ = sink_left_ >= body_len_;
      if (!body_to_sink_) ReserveIn(body_len_);
      body_got_ = 0;
      phase_ = Phase::kBody;
    } else if (phase_ == Phase::kBody) {
      uint8_t* dst = (body_to_sink_ ? sink_ : in_.data() + in_end_) + body_got_;
      const size_t want = body_len_ - body_got_;
      if (raw > 0) {
        const size_t take = std::min(raw, want);
        std::memcpy(dst, raw_.data() + raw_start_, take);
        raw_start_ += take;
        body_got_ += take;
      } else if (want >= (64u << 10)) {
        // A large rest: straight from the socket into place.
        const ssize_t r = ::recv(fd_, dst, want, 0);
        if (r > 0) {
          body_got_ += static_cast<size_t>(r);
          progress = 1;
        } else if (r == 0) {
          FailWith("connection closed by the peer");
          return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          return progress;
        } else if (errno != EINTR) {
          FailWith(std::string("read: ") + std::strerror(errno));
          return -1;
        }
      } else if (!RecvRaw(&progress)) {
        return progress;
      }
      if (body_got_ == body_len_) phase_ = Phase::kTag;
    } else {
      if (raw < kTagBytes) {
        if (!RecvRaw(&progress)) return progress;
        continue;
      }
      const uint8_t* body = body_to_sink_ ? sink_ : in_.data() + in_end_;
      PutCounter(open_nonce_, open_count_++);
      uint8_t tag[kTagBytes];
      std::memcpy(tag, raw_.data() + raw_start_, kTagBytes);
      raw_start_ += kTagBytes;
      int n = 0;
      uint8_t none[16];
      const bool ok =
          EVP_DecryptInit_ex(open_.get(), nullptr, nullptr, nullptr, open_nonce_) == 1 &&
          EVP_DecryptUpdate(open_.get(), nullptr, &n, body, static_cast<int>(body_len_)) == 1 &&
          EVP_CIPHER_CTX_ctrl(open_.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
          EVP_DecryptFinal_ex(open_.get(), none, &n) == 1;
      if (!ok) {
        ERR_clear_error();
        violated_ = true;
        FailWith("integrity mode: chunk " + std::to_string(open_count_ - 1) + " of " +
                 std::to_string(body_len_) + " bytes failed its integrity check");
        return -1;
      }
      phase_ = Phase::kHead;
      if (body_to_sink_) {
        sink_ += body_len_;
        sink_left_ -= body_len_;
      } else {
        in_end_ += body_len_;
        if (sink_left_ != 0) {  // the chunk begins with the rest of a payload being received
          const size_t k = std::min(sink_left_, in_end_ - in_start_);
          std::memcpy(sink_, in_.data() + in_start_, k);
          sink_ += k;
          sink_left_ -= k;
          in_start_ += k;
        }
      }
      return 1;  // the caller parses what arrived before the next chunk is placed
    }
  }
}

// --- ConnectTls ---

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

}  // namespace vios::agent::peer
