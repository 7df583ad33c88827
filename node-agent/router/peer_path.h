// PeerPath: a router::Path through a peer agent that still reaches the backend (DESIGN.md §6).
// Its Device() forwards each IoRequest over the peer channel's ExecuteIo (proto/peer.proto,
// async gRPC, mutual TLS) to that peer, which runs it on its own LOCAL path and returns data and
// status.
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
#include <string>
#include <thread>

#include <grpcpp/channel.h>
#include <grpcpp/completion_queue.h>

#include "node-agent/router/path.h"
#include "proto/peer.grpc.pb.h"

namespace vios::router {

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

  // Start begins periodic Health calls (the first at once).
  void Start();
  void Stop();
  // CheckHealth makes one Health call now and returns the resulting health.
  PathHealth CheckHealth();
  const PeerPathOptions& options() const { return options_; }
  uint64_t in_flight() const { return in_flight_.load(); }

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
  struct Call;

  void Forward(backend::IoRequest* request);
  void Complete(Call* call);
  void DrainCompletions();
  void SetHealth(PathHealth to, const std::string& reason);
  void HealthLoop();

  const PeerPathOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<vios::peer::v1::Peer::Stub> stub_;
  PeerDevice device_{this};
  std::atomic<PathHealth> health_{PathHealth::kLost};
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> in_flight_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread health_thread_;
  // Completions of ExecuteIo arrive on our own queue and thread: gRPC 1.51's callback API
  // delivers client completions with millisecond lags, a completion queue does not.
  grpc::CompletionQueue cq_;
  std::thread cq_thread_;
};

}  // namespace vios::router
