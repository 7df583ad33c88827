// PeerPath: I/O forwarded over ExecuteIo, health from Health calls and results (peer_path.h).
#include "node-agent/router/peer_path.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <grpcpp/client_context.h>

#include "common/log/log.h"
#include "node-agent/peer/peer_io.h"

namespace vios::router {

struct PeerPath::Call {
  Tag tag{Tag::Kind::kUnary, nullptr, this};
  backend::IoRequest* request = nullptr;
  grpc::ClientContext ctx;
  vios::peer::v1::IoRequest req;
  vios::peer::v1::IoResponse resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<vios::peer::v1::IoResponse>> reader;
};

PeerPath::PeerPath(std::shared_ptr<grpc::Channel> channel, PeerPathOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(vios::peer::v1::Peer::NewStub(channel_)) {
  protection_retry_ = options_.data_protection_retry;
  cq_thread_ = std::thread([this] { DrainCompletions(); });
}

PeerPath::~PeerPath() {
  Stop();
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return in_flight_.load() == 0; });
  }
  std::shared_ptr<agent::peer::DataClient> data;
  {
    std::lock_guard<std::mutex> lock(io_mu_);
    data.swap(data_);
  }
  data.reset();  // no request is left on it: closes the connection
  {
    // No request is left: end the stream and wait until gRPC returned all of its events.
    std::unique_lock<std::mutex> lock(io_mu_);
    if (stream_ != nullptr) BreakLocked(stream_);
    streams_cv_.wait(lock, [this] { return live_streams_ == 0; });
  }
  cq_.Shutdown();
  cq_thread_.join();
}

void PeerPath::DrainCompletions() {
  // Wake at least this often to expire requests past their deadline.
  const auto scan = std::max(std::chrono::milliseconds(5),
                             std::min(std::chrono::milliseconds(50), options_.io_deadline / 10));
  auto next_scan = std::chrono::steady_clock::now() + scan;
  std::vector<Finished> done;
  while (true) {
    void* raw = nullptr;
    bool ok = false;
    const auto status = cq_.AsyncNext(&raw, &ok, std::chrono::system_clock::now() + scan);
    if (status == grpc::CompletionQueue::SHUTDOWN) return;
    done.clear();
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      Tag* tag = static_cast<Tag*>(raw);
      if (tag->kind == Tag::Kind::kUnary) {
        Complete(tag->call);
      } else {
        OnStreamEvent(tag, ok, &done);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_scan) {
      next_scan = now + scan;
      std::lock_guard<std::mutex> lock(io_mu_);
      ExpireLocked(now, &done);
    }
    for (const Finished& f : done) CompleteRequest(f.request, f.result, f.data);
  }
}

void PeerPath::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (health_thread_.joinable() || options_.health_interval.count() == 0) {
    return;
  }
  stop_ = false;
  health_thread_ = std::thread([this] { HealthLoop(); });
}

void PeerPath::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (health_thread_.joinable()) {
    health_thread_.join();
  }
}

void PeerPath::SetHealth(PathHealth to, const std::string& reason) {
  const PathHealth from = health_.exchange(to, std::memory_order_acq_rel);
  if (from == to) {
    return;
  }
  VIOS_LOG(kInfo, "peer path health changed")
      .Field("backend", options_.pool + "/" + options_.backend)
      .Field("path", Name())
      .Field("from", PathHealthName(from))
      .Field("to", PathHealthName(to))
      .Field("reason", reason);
  if (options_.on_change) {
    options_.on_change(from, to, reason);
  }
}

void PeerPath::ReportResult(int result) {
  if (result != 0 && IsPathError(result)) {
    SetHealth(PathHealth::kLost, "io_error");
  }
}

PathHealth PeerPath::CheckHealth() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.health_deadline);
  vios::peer::v1::HealthRequest req;
  req.set_from_member(options_.self);
  vios::peer::v1::HealthResponse resp;
  const grpc::Status status = stub_->Health(&ctx, req, &resp);
  if (!status.ok()) {
    SetHealth(PathHealth::kLost, "health_call_failed");
    MaintainData(false, 0);
    return Health();
  }
  bool reachable = false;
  for (const auto& b : resp.backends()) {
    if (b.pool() == options_.pool && b.backend() == options_.backend) {
      reachable = b.reachable();
    }
  }
  SetHealth(reachable ? PathHealth::kHealthy : PathHealth::kLost,
            reachable ? "peer_reaches_backend" : "peer_lost_backend");
  MaintainData(reachable, resp.data_port());
  return Health();
}

void PeerPath::MaintainData(bool healthy, uint32_t port) {
  if (options_.transport != PeerTransport::kData || !options_.data_tls) return;
  std::shared_ptr<agent::peer::DataClient> current;
  {
    std::lock_guard<std::mutex> lock(io_mu_);
    current = data_;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool working = current && !current->broken() && healthy && port != 0;
  if (working) {
    current->Ping();  // an unanswered previous ping breaks it: requests then use IoStream
    // The peer kept it encrypted while integrity was asked for (its setting may not have caught
    // up with the cluster's yet, or it is not set there): ask again, less and less often.
    if (current->protection() == options_.data_protection || now < next_protection_try_) return;
    next_protection_try_ = now + protection_retry_;
    protection_retry_ =
        std::min<std::chrono::milliseconds>(protection_retry_ * 2, std::chrono::minutes(5));
  }
  std::shared_ptr<agent::peer::DataClient> fresh;
  if (healthy && port != 0) {
    agent::peer::DataClientOptions o{.host = options_.data_host,
                                     .port = static_cast<uint16_t>(port),
                                     .server_name = options_.peer,
                                     .tls = *options_.data_tls,
                                     .pool = options_.pool,
                                     .backend = options_.backend,
                                     .io_deadline = options_.io_deadline,
                                     .connect_timeout = options_.health_deadline,
                                     .protection = options_.data_protection};
    std::string error;
    fresh = agent::peer::DataClient::Connect(
        o,
        [this](backend::IoRequest* request, int result) {
          CompleteRequest(request, result, nullptr);
        },
        &error);
    if (working && (!fresh || fresh->protection() == current->protection())) {
      return;  // still not granted: keep the connection in use (`fresh` closes, idle)
    }
    if (fresh && fresh->protection() == options_.data_protection) {
      protection_retry_ = options_.data_protection_retry;
    } else if (fresh && !working) {
      next_protection_try_ = now + protection_retry_;
    }
    // Logged when the reason changes, not every Health round (a firewall would flood the log;
    // vios_peer_io_transport_total and its alert show that it goes on).
    std::lock_guard<std::mutex> lock(mu_);
    if (!fresh && error != data_error_) {
      VIOS_LOG(kWarning, "peer data channel not connected; using IoStream")
          .Field("path", Name())
          .Field("error", error);
    } else if (fresh && (!data_error_.empty() || !data_seen_ || working)) {
      VIOS_LOG(kInfo, "peer data channel connected")
          .Field("path", Name())
          .Field("protection", agent::peer::DataProtectionName(fresh->protection()));
    }
    if (fresh) data_seen_ = true;
    data_error_ = fresh ? "" : error;
  }
  {
    std::lock_guard<std::mutex> lock(io_mu_);
    data_.swap(fresh);
  }
  // `fresh` now holds the old connection, if any: closing it fails what is still on it with a
  // path error (retried by the router).
}

bool PeerPath::data_connected() {
  std::lock_guard<std::mutex> lock(io_mu_);
  return data_ && !data_->broken();
}

const char* PeerPath::DataChannel() const {
  std::lock_guard<std::mutex> lock(io_mu_);
  if (!data_ || data_->broken()) return nullptr;
  return agent::peer::DataProtectionName(data_->protection());
}

void PeerPath::HealthLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    CheckHealth();
    lock.lock();
    cv_.wait_for(lock, options_.health_interval, [this] { return stop_; });
  }
}

void PeerPath::Forward(backend::IoRequest* request) {
  in_flight_.fetch_add(1);
  bool unary = options_.transport == PeerTransport::kUnary;
  std::shared_ptr<agent::peer::DataClient> data;
  if (!unary) {
    std::lock_guard<std::mutex> lock(io_mu_);
    unary = unary_fallback_;
    if (data_ && !data_->broken()) data = data_;
  }
  if (data) {
    by_data_.fetch_add(1, std::memory_order_relaxed);
    data->Submit(request);
  } else if (unary) {
    by_unary_.fetch_add(1, std::memory_order_relaxed);
    ForwardUnary(request);
  } else {
    by_stream_.fetch_add(1, std::memory_order_relaxed);
    ForwardStream(request);
  }
}

void PeerPath::ForwardUnary(backend::IoRequest* request) {
  auto call = std::make_unique<Call>();
  call->request = request;
  call->ctx.set_deadline(std::chrono::system_clock::now() + options_.io_deadline);
  vios::peer::v1::IoRequest& req = call->req;
  req.set_pool(options_.pool);
  req.set_backend(options_.backend);
  req.set_op(agent::peer::ToProtoOp(request->op));
  req.set_offset(request->offset);
  req.set_request_id(next_request_id_.fetch_add(1, std::memory_order_relaxed));
  req.set_from_member(options_.self);
  switch (request->op) {
    case backend::IoOp::kRead:
      req.set_length(request->read_buffer.size());
      break;
    case backend::IoOp::kWrite:
      req.set_length(request->write_buffer.size());
      req.set_data(request->write_buffer.data(), request->write_buffer.size());
      break;
    case backend::IoOp::kFlush:
      break;
    default:
      req.set_length(request->length);
      break;
  }
  Call* raw = call.release();
  raw->reader = stub_->PrepareAsyncExecuteIo(&raw->ctx, raw->req, &cq_);
  raw->reader->StartCall();
  raw->reader->Finish(&raw->resp, &raw->status, &raw->tag);
}

void PeerPath::Complete(Call* raw) {
  std::unique_ptr<Call> call(raw);
  const grpc::Status& status = call->status;
  int result = agent::peer::ErrnoForStatus(status);
  if (status.ok() && call->resp.error() != 0) {
    result = -call->resp.error();
  }
  if (!status.ok()) {
    VIOS_LOG(kWarning, "peer I/O failed")
        .Field("path", Name())
        .Field("code", static_cast<int>(status.error_code()))
        .Field("error", status.error_message());
  }
  CompleteRequest(call->request, result, &call->resp.data());
}

void PeerPath::CompleteRequest(backend::IoRequest* request, int result, const std::string* data) {
  // data null: the payload is in read_buffer already (the data channel) or there is none.
  if (result == 0 && request->op == backend::IoOp::kRead && data != nullptr) {
    if (data->size() != request->read_buffer.size()) {
      result = -ECONNRESET;  // a peer answering the wrong size is not to be trusted: path error
    } else {
      std::memcpy(request->read_buffer.data(), data->data(), data->size());
    }
  }
  request->result = result;
  request->completion->IoDone(request);
  // Last: the destructor may run as soon as in_flight_ reaches 0.
  std::lock_guard<std::mutex> lock(mu_);
  if (in_flight_.fetch_sub(1) == 1) {
    cv_.notify_all();
  }
}

}  // namespace vios::router
