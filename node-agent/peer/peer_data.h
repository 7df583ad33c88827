// The peer data channel (DESIGN.md §6): a peer path's I/O over one mutual-TLS TCP connection with
// a fixed binary frame per request and per answer, next to the gRPC peer channel.
//
// Why a second connection: gRPC over TLS costs about five memory copies per payload byte on each
// end (protobuf serialization and parsing, the TLS layer's buffer pairs, HTTP/2 framing) and a few
// thread hand-offs per message. Measured in bench/peer-path, that CPU, not the network, capped
// I/O through a peer at under half of the local path. Here a large payload is encrypted from the
// buffer it is in and decrypted into the buffer it belongs in (AppendRef, SetSink), small frames
// are copied once and share TLS records; each connection is one thread that reads and writes
// (OpenSSL forbids using one SSL object from two threads at once).
//
// Control (Health, cluster messages, reservations) stays on gRPC; the data channel is found
// through Health (HealthResponse.data_port) and is optional: a peer path without one (an older
// peer, a failed handshake, a broken connection being replaced) uses the gRPC IoStream.
//
// Security is the peer channel's: TLS 1.3 only, both ends present a certificate of the cluster CA
// (the same files, re-read for every new connection so a rotated certificate applies), the client
// checks that the server's certificate names the member it meant to reach, the server takes the
// caller's identity from the common name of its certificate.
//
// Protection (DataProtection): by default every byte is encrypted by TLS. When both ends are
// configured for kIntegrity (a trusted storage network, where the cost of encryption matters
// more), the hello asks for it (hello op 1) and the hello-ack grants it (hello-ack op 1); after
// that exchange both directions leave TLS records for authenticated chunks:
//   length u32 | length bytes of the frame stream | tag (16 bytes)
// where tag is AES-128-GMAC over the bytes with a key and a 4-byte salt per direction exported
// from the TLS session (RFC 8446 §7.5, label "EXPORTER-vios-data-integrity") and a 64-bit
// counter per direction as the rest of the nonce, so a chunk that was changed, dropped, replayed
// or reordered fails its check, which closes the connection. The peer is still authenticated by
// its certificate; the bytes are not secret. A large payload is its own chunk: it is sent with the
// frame before it in one writev and received straight into its buffer, without the copies
// OpenSSL's records need; GMAC costs about a quarter of AES-GCM per byte.
//
// Wire format (all integers little-endian), a 40-byte header per frame, then data_bytes of data:
//   0 magic u32 "VDC1"   4 kind u8   5 op u8 (peer.proto IoOp)   6 reserved u16 (0)
//   8 error i32 (a positive errno, answers)   12 data_bytes u32   16 id u64
//   24 offset u64 (bytes)   32 length u64 (bytes of the I/O)
// kinds: hello (client, data "pool\nbackend"), hello-ack (server; error != 0: refused and closed),
// request, response (same id; data: a read's payload), ping / pong (same id; liveness).
// A frame that breaks these rules (bad magic, unknown kind, data too large, data on a kind that
// carries none) closes that connection and only that one; a request whose fields are wrong for
// the device (ValidateIoFields) gets an answer with EINVAL and the connection stays up.
//
//   DataServer server({.listen_address = "127.0.0.1:0", .tls = tls, .host = io_host});
//   server.Start();   // throws PeerError
//   auto client = DataClient::Connect({.host = "127.0.0.1", .port = server.port(),
//       .server_name = "node-b", .tls = tls_a, .pool = "p", .backend = "b"}, on_done, &error);
//   client->Submit(&request);   // on_done(&request, result) exactly once, on any thread
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/peer/peer_io.h"
#include "node-agent/peer/peer_io_stream.h"
#include "node-agent/peer/peer_tls.h"

namespace vios::agent::peer {

inline constexpr uint32_t kDataMagic = 0x31434456;  // "VDC1"
inline constexpr size_t kDataHeaderBytes = 40;

enum class DataKind : uint8_t {
  kHello = 1,
  kHelloAck = 2,
  kRequest = 3,
  kResponse = 4,
  kPing = 5,
  kPong = 6,
};

struct DataHeader {
  DataKind kind = DataKind::kRequest;
  uint8_t op = 0;  // vios::peer::v1::IoOp
  int32_t error = 0;
  uint32_t data_bytes = 0;
  uint64_t id = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

void EncodeDataHeader(const DataHeader& header, uint8_t* out);  // kDataHeaderBytes bytes
// DecodeDataHeader returns "" or what is wrong with the frame (bad magic, unknown kind, ...).
std::string DecodeDataHeader(const uint8_t* in, DataHeader* header);

// kMaxHelloBytes bounds a hello's "pool\nbackend".
inline constexpr uint32_t kMaxHelloBytes = 1024;

// DataProtection: how a data connection protects the bytes after the hello (see above).
enum class DataProtection : uint8_t {
  kEncrypt = 0,    // TLS records: confidentiality and integrity (the default)
  kIntegrity = 1,  // authenticated chunks: integrity and authenticity, no confidentiality
};
// ParseDataProtection accepts "encrypt" and "integrity"; false otherwise.
bool ParseDataProtection(const std::string& text, DataProtection* out);
const char* DataProtectionName(DataProtection protection);
// kMaxChunkBytes bounds one authenticated chunk (a longer piece of output is split).
inline constexpr size_t kMaxChunkBytes = 4u << 20;

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// MakeDataTlsContext builds a TLS 1.3 context from the peer files (read now: a rotated
// certificate applies to the next connection). Null with *error naming the file or the problem.
SslCtxPtr MakeDataTlsContext(const PeerTls& tls, bool server, std::string* error);

// TlsPipe is one established TLS connection on a non-blocking socket, with an output buffer that
// frames are appended to and an input buffer they are parsed from. Used by one thread at a time.
class TlsPipe {
 public:
  TlsPipe(int fd, SSL* ssl);  // takes both
  ~TlsPipe();
  TlsPipe(const TlsPipe&) = delete;
  TlsPipe& operator=(const TlsPipe&) = delete;

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }
  // StartIntegrity switches both directions from TLS records to authenticated chunks (the
  // DataProtection::kIntegrity exchange has just completed). Output still buffered is flushed
  // through TLS first; it fails (error()) when that cannot be done at once or when input beyond
  // the exchange has already arrived.
  bool StartIntegrity(bool server);
  bool integrity() const { return seal_ != nullptr; }
  // Append a frame: header, then data (may be empty), copied.
  void Append(const DataHeader& header, const uint8_t* data, size_t size);
  // AppendRef: the same, but a large data buffer is sent from where it is, not copied: it must
  // stay valid until Flushed() reaches the Appended() value returned here.
  uint64_t AppendRef(const DataHeader& header, const uint8_t* data, size_t size);
  uint64_t Appended() const { return appended_; }
  uint64_t Flushed() const { return flushed_; }
  // Flush writes the output buffer as far as the socket takes it; false when the connection
  // failed (error()).
  bool Flush();
  bool WantsWrite() const { return appended_ != flushed_; }
  size_t OutBytes() const { return static_cast<size_t>(appended_ - flushed_); }
  // Fill reads what the socket has; false when the connection ended or failed (error()).
  bool Fill();
  // ReadSome makes one read (at most one TLS record): 1 when it got bytes, 0 when nothing is
  // there yet, -1 when the connection ended or failed (error()). With a sink set, the bytes go
  // there; once the sink is full nothing more is read until the caller has seen it.
  int ReadSome();
  // SetSink: the next n bytes of the stream go straight to dst (a large payload lands where it
  // belongs instead of being copied out of the input buffer).
  void SetSink(uint8_t* dst, size_t n) {
    sink_ = dst;
    sink_left_ = n;
  }
  // HasPending: data already read from the socket but not yet returned by Fill (poll would not
  // report it).
  bool HasPending() const;
  bool SinkActive() const { return sink_left_ != 0; }
  const uint8_t* in_data() const { return in_.data() + in_start_; }
  size_t in_size() const { return in_end_ - in_start_; }
  void Consume(size_t n);
  const std::string& error() const { return error_; }
  // violated: the connection ended because the other end broke the chunk rules of integrity
  // mode (a changed, replayed or oversized chunk), not because it closed or the network failed.
  bool violated() const { return violated_; }

 private:
  bool Fail(const std::string& what, int ssl_error);
  bool FailWith(const std::string& what);

  int fd_;
  SSL* ssl_;
  // Piece: a run of output, either bytes of out_ (data null) or a caller's buffer. In integrity
  // mode each piece is one chunk, sealed (length and tag filled in) when it is first sent.
  struct Piece {
    const uint8_t* data;
    size_t begin;  // in out_, when data is null
    size_t size;
    bool sealed = false;
    uint8_t head[4] = {};
    uint8_t tag[16] = {};
  };
  void AddStaged(const uint8_t* bytes, size_t n);
  const uint8_t* PieceData(const Piece& piece) const {
    return piece.data != nullptr ? piece.data : out_.data() + piece.begin;
  }
  bool FlushChunks();
  int ReadChunks();
  bool RecvRaw(int* progress);
  void Seal(Piece* piece);
  // Room for n more bytes at the end of in_ (moves what is unread to the front, or grows).
  void ReserveIn(size_t n);

  struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
  };
  using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
  // Integrity mode: GMAC contexts (keys set) and nonces per direction.
  CipherCtxPtr seal_;
  CipherCtxPtr open_;
  uint8_t seal_nonce_[12] = {};  // salt (4) | counter (8, little-endian)
  uint8_t open_nonce_[12] = {};
  uint64_t seal_count_ = 0;
  uint64_t open_count_ = 0;
  // Integrity mode input: socket bytes not yet taken apart (raw_), and the chunk being received.
  enum class Phase : uint8_t { kHead, kBody, kTag };
  std::vector<uint8_t> raw_;
  size_t raw_start_ = 0;
  size_t raw_end_ = 0;
  Phase phase_ = Phase::kHead;
  size_t body_len_ = 0;
  size_t body_got_ = 0;
  bool body_to_sink_ = false;  // else into in_, after in_end_
  bool violated_ = false;

  std::vector<uint8_t> out_;  // copied output, referred to by pieces
  std::deque<Piece> pieces_;  // what to send, in order; the front is partly sent
  size_t front_sent_ = 0;     // bytes of pieces_.front() written to the TLS layer
  uint64_t appended_ = 0;     // bytes ever appended
  uint64_t flushed_ = 0;      // bytes ever written to the TLS layer
  std::vector<uint8_t> in_;
  size_t in_start_ = 0;
  size_t in_end_ = 0;
  uint8_t* sink_ = nullptr;
  size_t sink_left_ = 0;
  std::string error_;
};

// ConnectTls opens a TCP connection and completes a TLS 1.3 handshake in which the server's
// certificate must chain to tls.ca_file and name server_name. Null with *error on failure.
std::unique_ptr<TlsPipe> ConnectTls(const std::string& host, uint16_t port,
                                    const std::string& server_name, const PeerTls& tls,
                                    std::chrono::steady_clock::time_point deadline,
                                    std::string* error);

// --- server ---

struct DataServerOptions {
  std::string listen_address;  // host:port; port 0 picks a free one (see port())
  PeerTls tls;
  IoStreamHost* host = nullptr;  // devices, limits and counters (the PeerServer)
  std::chrono::milliseconds handshake_timeout{5000};
  // max_in_flight: requests of one connection inside a backend before it stops reading.
  uint32_t max_in_flight = 1024;
  // max_connections: open connections (each has a thread, handshakes included); more are
  // closed at once.
  uint32_t max_connections = 256;
  // allow_integrity: grant DataProtection::kIntegrity to a client that asks for it (otherwise
  // its connection stays encrypted).
  bool allow_integrity = false;
};

class DataServer {
 public:
  explicit DataServer(DataServerOptions options);
  ~DataServer();
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  void Start();  // throws PeerError when the address cannot be bound
  // Stop closes the listener and every connection; it returns once no request of theirs is
  // inside a backend.
  void Stop();
  int port() const { return port_; }
  // SetAllowIntegrity changes DataServerOptions::allow_integrity for connections made after.
  void SetAllowIntegrity(bool allow) { allow_integrity_.store(allow); }
  uint64_t connections_accepted() const { return accepted_.load(); }
  uint64_t connections_refused() const { return refused_.load(); }

 private:
  class Conn;
  void AcceptLoop();
  void Reap(bool all);

  DataServerOptions options_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the accept loop
  int port_ = 0;
  std::thread accept_thread_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<bool> allow_integrity_;
  std::mutex mu_;
  std::list<std::unique_ptr<Conn>> conns_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
};

// --- client ---

struct DataClientOptions {
  std::string host;
  uint16_t port = 0;
  std::string server_name;  // the peer's member name: its certificate must name it
  PeerTls tls;
  std::string pool;
  std::string backend;
  // io_deadline: a request not answered within it fails with -ETIMEDOUT and breaks the
  // connection (its other requests fail with -ECONNRESET: path errors, retried elsewhere).
  std::chrono::milliseconds io_deadline{2000};
  std::chrono::milliseconds connect_timeout{1000};  // TCP connect, TLS handshake and hello
  // protection: kIntegrity asks the server for it; the connection is encrypted unless granted.
  DataProtection protection = DataProtection::kEncrypt;
};

class DataClient {
 public:
  // Done completes one request: result 0 (a read's data is in its read_buffer) or -errno.
  using Done = std::function<void(backend::IoRequest* request, int result)>;

  // Connect opens, authenticates and binds a connection to options.pool/backend; null with
  // *error on failure (nothing is left running).
  static std::unique_ptr<DataClient> Connect(const DataClientOptions& options, Done done,
                                             std::string* error);
  // The destructor breaks the connection; every request has completed when it returns.
  ~DataClient();
  DataClient(const DataClient&) = delete;
  DataClient& operator=(const DataClient&) = delete;

  // Submit sends request; done runs exactly once for it (at once, with -ECONNRESET, when the
  // connection is already broken). Thread-safe.
  void Submit(backend::IoRequest* request);
  // Ping sends a liveness probe; false (and the connection is broken) when the previous probe
  // is still unanswered.
  bool Ping();
  void Break(const std::string& reason);
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  // protection: what the connection uses (the server may have kept it encrypted).
  DataProtection protection() const { return protection_; }
  const std::string& break_reason() const { return break_reason_; }  // once broken()

 private:
  struct Slot {
    backend::IoRequest* request = nullptr;
    std::chrono::steady_clock::time_point deadline{};
    uint32_t generation = 0;
  };

  DataClient(std::unique_ptr<TlsPipe> pipe, const DataClientOptions& options, Done done);
  void Loop();
  void Wake();
  void FailAll(std::vector<std::pair<backend::IoRequest*, int>>* done, int result);
  // Finish completes slot index's request with result (appended to done) and frees the slot.
  void Finish(uint32_t index, int result, std::vector<std::pair<backend::IoRequest*, int>>* done);
  // ParseAnswers handles the answers in the input (sets *why on a protocol error).
  void ParseAnswers(std::vector<std::pair<backend::IoRequest*, int>>* done, std::string* why);

  static constexpr uint32_t kNoSlot = UINT32_MAX;

  const DataClientOptions options_;
  const Done done_;
  DataProtection protection_ = DataProtection::kEncrypt;
  std::unique_ptr<TlsPipe> pipe_;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> broken_{false};
  std::string break_reason_;  // written before broken_ is set

  std::mutex mu_;
  std::vector<backend::IoRequest*> submitted_;  // guarded by mu_
  bool closing_ = false;                        // guarded by mu_: the loop is ending
  std::string break_request_;                   // guarded by mu_: Break asked the loop to stop
  bool ping_due_ = false;                       // guarded by mu_
  std::atomic<uint64_t> pings_sent_{0};
  std::atomic<uint64_t> pongs_seen_{0};

  // Loop thread only.
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  size_t in_slots_ = 0;
  uint32_t receiving_ = kNoSlot;  // the read whose data is arriving through the pipe's sink
  std::thread thread_;
};

}  // namespace vios::agent::peer
