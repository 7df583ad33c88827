// PeerPath: a router::Path through a peer agent that still reaches the backend (DESIGN.md §6).
// Its Device() forwards each IoRequest to that peer over the peer channel (proto/peer.proto,
// async gRPC, mutual TLS); the peer runs it on its own LOCAL path and returns data and status.
//
// Transport (PeerPathOptions::transport): by default the peer's data channel (kData,
// node-agent/peer/peer_data.h: one mutual-TLS connection with binary frames, opened by the
// Health loop once the peer reports its data port, and probed by a ping on every Health round).
// While there is none (a peer without one, before the first Health answer, a broken connection
// not yet replaced) requests go over one long-lived IoStream per path (batched while a message
// is on the wire; peer_path_stream.cc), which is also kStream's only transport; kUnary sends one
// ExecuteIo call per I/O (peers without IoStream, and the benchmark's comparison). Every request
// has its own deadline (io_deadline) kept by this side; a request past it fails with -ETIMEDOUT
// and breaks its connection or stream. A broken connection or stream (peer killed, connection
// reset, deadline) fails every request on it with a path error, so the router retries each on
// another path; the next request uses a new one.
//
//   auto channel = agent::peer::MakePeerChannel("127.0.0.2:7443", "node-b", tls);  // per peer
//   auto path = std::make_unique<PeerPath>(channel, PeerPathOptions{.pool = "default",
//       .backend = "san0", .peer = "node-b", .self = "node-a", .on_change = ...});
//   path->Start();                       // periodic Health calls
//   router.AddPath(std::move(path));     // used while the local path is Lost
//
// Health comes from two sources: a periodic Health call, in which the peer says whether IT
// reaches this backend (its PeerServerOptions::backends), and the results of the I/O sent
// through it: a failed call (peer down, connection reset, deadline) or a path error the peer's
// backend reported makes the path Lost at once, so the router retries the request elsewhere.
// A peer path is Lost until its first good Health answer.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/completion_queue.h>

#include "node-agent/peer/peer_data.h"
#include "node-agent/router/path.h"
#include "proto/peer.grpc.pb.h"

namespace vios::router {

enum class PeerTransport : uint8_t {
  kData,    // the peer data channel, IoStream while it is not connected
  kStream,  // IoStream: one bidirectional stream per path
  kUnary,   // ExecuteIo: one call per I/O
};

struct PeerPathOptions {
  std::string pool{};
  std::string backend{};
  std::string peer{};  // member name of the peer: Name() is "peer:<peer>"
  std::string self{};  // this member, sent as from_member
  // io_deadline: a request the peer does not answer within this fails with -ETIMEDOUT and is
  // retried elsewhere. A killed peer is noticed sooner (connection reset, keepalive pings).
  std::chrono::milliseconds io_deadline{2000};
  std::chrono::milliseconds health_interval{1000};  // 0: no Health calls (health from I/O only)
  std::chrono::milliseconds health_deadline{1000};
  uint64_t size_bytes = 0;  // reported by Device(); the router uses its local device's
  uint32_t block_size = 512;
  PeerTransport transport = PeerTransport::kData;
  // The data channel: the peer's host (its peer address without the port) and this member's
  // TLS files. Without data_tls, kData behaves as kStream.
  std::string data_host{};
  std::optional<agent::peer::PeerTls> data_tls{};
  // data_protection: kIntegrity asks the peer for authenticated, unencrypted chunks (granted
  // only when the peer allows it too; the connection is encrypted otherwise).
  agent::peer::DataProtection data_protection = agent::peer::DataProtection::kEncrypt;
  // data_protection_retry: how soon a connection the peer kept encrypted is offered integrity
  // again (doubling per refusal, up to 5 minutes).
  std::chrono::milliseconds data_protection_retry{10000};
  // on_change runs on the thread that saw the transition; it must not block.
  std::function<void(PathHealth from, PathHealth to, const std::string& reason)> on_change{};
};

class PeerPath final : public Path {
 public:
  PeerPath(std::shared_ptr<grpc::Channel> channel, PeerPathOptions options);
  // The destructor stops Health calls and waits for requests in flight (bounded by io_deadline).
  ~PeerPath() override;
  PeerPath(const PeerPath&) = delete;
  PeerPath& operator=(const PeerPath&) = delete;

  std::string Name() const override { return "peer:" + options_.peer; }
  PathHealth Health() const override { return health_.load(std::memory_order_acquire); }
  backend::BlockDevice* Device() override { return &device_; }
  void ReportResult(int result) override;
  std::vector<std::pair<const char*, uint64_t>> TransportCounts() const override {
    return {{"data", by_data_.load()}, {"stream", by_stream_.load()}, {"unary", by_unary_.load()}};
  }
  const char* DataChannel() const override;

  // Start begins periodic Health calls (the first at once).
  void Start();
  void Stop();
  // CheckHealth makes one Health call now and returns the resulting health.
  PathHealth CheckHealth();
  const PeerPathOptions& options() const { return options_; }
  uint64_t in_flight() const { return in_flight_.load(); }
  // data_connected: requests go over the data channel now.
  bool data_connected();
  agent::peer::DataProtection data_protection() const { return options_.data_protection; }

 private:
  class PeerDevice final : public backend::BlockDevice {
   public:
    explicit PeerDevice(PeerPath* path) : path_(path) {}
    uint64_t SizeBytes() const override { return path_->options_.size_bytes; }
    uint32_t BlockSize() const override { return path_->options_.block_size; }
    bool SupportsDiscard() const override { return true; }
    void Submit(backend::IoRequest* request) override { path_->Forward(request); }
    std::string Describe() const override { return path_->Name(); }

   private:
    PeerPath* path_;
  };
  struct Call;    // one unary ExecuteIo
  struct Stream;  // one IoStream call
  // OutBatch: requests collected for one IoStream message (pooled).
  struct OutBatch {
    vios::peer::v1::IoBatch message;
    uint64_t bytes = 0;
  };
  // Tag: what a completion-queue event is about.
  struct Tag {
    enum class Kind : uint8_t { kUnary, kStart, kRead, kWrite, kFinish };
    Kind kind;
    Stream* stream;
    Call* call;
  };
  // Slot: a request sent on a stream and not answered yet. Its id is (generation << 32 | index),
  // so a late answer to a slot since reused matches nothing.
  struct Slot {
    backend::IoRequest* request = nullptr;
    Stream* stream = nullptr;
    std::chrono::steady_clock::time_point deadline{};
    uint32_t generation = 0;
  };
  // Finished: a request to complete outside io_mu_.
  struct Finished {
    backend::IoRequest* request;
    int result;
    const std::string* data;  // read payload in the stream's answer buffer, or null
  };

  void Forward(backend::IoRequest* request);
  void ForwardUnary(backend::IoRequest* request);
  void ForwardStream(backend::IoRequest* request);
  void Complete(Call* call);
  void CompleteRequest(backend::IoRequest* request, int result, const std::string* data);
  void DrainCompletions();
  void OnStreamEvent(Tag* tag, bool ok, std::vector<Finished>* done);
  Stream* NewStreamLocked();
  OutBatch* BatchForLocked(Stream* stream, uint64_t bytes);
  void StartWriteLocked(Stream* stream);
  void BreakLocked(Stream* stream);
  void FailStreamLocked(Stream* stream, int result, std::vector<Finished>* done);
  void ExpireLocked(std::chrono::steady_clock::time_point now, std::vector<Finished>* done);
  void SetHealth(PathHealth to, const std::string& reason);
  void HealthLoop();
  // MaintainData (Health loop): opens the data channel when the peer has one and it is not
  // connected, pings it otherwise; closes it when the peer is not healthy.
  void MaintainData(bool healthy, uint32_t port);

  const PeerPathOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<vios::peer::v1::Peer::Stub> stub_;
  PeerDevice device_{this};
  std::atomic<PathHealth> health_{PathHealth::kLost};
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> by_data_{0};  // requests forwarded per transport (metrics)
  std::atomic<uint64_t> by_stream_{0};
  std::atomic<uint64_t> by_unary_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;       // guarded by mu_
  std::string data_error_;  // guarded by mu_: why the data channel last failed to connect
  bool data_seen_ = false;  // guarded by mu_: a data connection was made once (logged)
  // When a connection without the asked-for protection (the peer did not grant integrity yet)
  // is next offered the chance to be replaced by one with it. Health loop only.
  std::chrono::steady_clock::time_point next_protection_try_{};
  std::chrono::milliseconds protection_retry_;  // doubles per refusal up to 5 minutes
  std::thread health_thread_;
  // Completions of ExecuteIo arrive on our own queue and thread: gRPC 1.51's callback API
  // delivers client completions with millisecond lags, a completion queue does not.
  grpc::CompletionQueue cq_;
  std::thread cq_thread_;

  // Stream state; every field guarded by io_mu_.
  mutable std::mutex io_mu_;
  std::condition_variable streams_cv_;
  Stream* stream_ = nullptr;     // where new requests go; null: open one on the next request
  int live_streams_ = 0;         // not yet deleted (the destructor waits for 0)
  bool unary_fallback_ = false;  // the peer answered IoStream with UNIMPLEMENTED
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<std::unique_ptr<OutBatch>> batches_;  // pooled request batches
  std::vector<OutBatch*> free_batches_;
  // The data channel; replaced by the Health loop, used by Forward (a copy of the pointer keeps
  // a connection alive while a request is handed to it).
  std::shared_ptr<agent::peer::DataClient> data_;  // guarded by io_mu_
};

}  // namespace vios::router
