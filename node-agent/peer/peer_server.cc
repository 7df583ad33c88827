// PeerServer: Health, Deliver, ExecuteIo and ApplyReservation over mutual TLS (peer_server.h).
#include "node-agent/peer/peer_server.h"

#include <chrono>
#include <condition_variable>
#include <span>

#include <grpcpp/server_builder.h>

#include "common/log/log.h"
#include "node-agent/peer/peer_io_stream.h"
#include "node-agent/peer/peer_message.h"

namespace vios::agent::peer {
namespace {

// PeerIdentity is the common name of the verified client certificate ("" if none).
std::string PeerIdentity(const grpc::ServerContextBase* ctx) {
  auto auth = ctx->auth_context();
  if (!auth) {
    return "";
  }
  auto cn = auth->FindPropertyValues("x509_common_name");
  return cn.empty() ? "" : std::string(cn.front().data(), cn.front().size());
}

}  // namespace

class PeerServer::Service final
    : public vios::peer::v1::Peer::WithCallbackMethod_IoStream<
          vios::peer::v1::Peer::WithCallbackMethod_ExecuteIo<vios::peer::v1::Peer::Service>>,
      public IoStreamHost {
 public:
  Service(const PeerServerOptions& options, events::EventBus& bus) : options_(options), bus_(bus) {}

  // IoStream: a peer path's long-lived stream (peer_io_stream.h).
  grpc::ServerBidiReactor<vios::peer::v1::IoBatch, vios::peer::v1::IoResultBatch>* IoStream(
      grpc::CallbackServerContext* ctx) override {
    grpc::Status refuse = grpc::Status::OK;
    if (!options_.local_devices) {
      refuse = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "IoStream: this agent does not serve I/O for peers");
    }
    return NewIoStreamReactor(this, PeerIdentity(ctx), refuse);
  }

  // IoStreamHost.
  backend::BlockDevice* LocalDevice(const std::string& pool, const std::string& backend) override {
    return options_.local_devices(pool, backend);
  }
  uint64_t MaxIoBytes() const override { return options_.max_io_bytes; }
  void IoStarted() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++in_flight_;
  }
  void IoRefused(const std::string& identity, const std::string& error) override {
    ++io_refused_;
    VIOS_LOG(kWarning, "peer I/O refused").Field("identity", identity).Field("error", error);
  }

  // IoCall is one ExecuteIo between Submit and IoDone; it frees itself when done.
  struct IoCall final : backend::IoCompletion {
    Service* service = nullptr;
    grpc::ServerUnaryReactor* reactor = nullptr;
    vios::peer::v1::IoResponse* response = nullptr;
    std::atomic<uint64_t>* served = nullptr;
    backend::IoRequest io;
    void IoDone(backend::IoRequest* request) override {
      std::unique_ptr<IoCall> self(this);
      if (request->result != 0) {
        response->set_error(-request->result);
        response->clear_data();
      }
      served->fetch_add(1, std::memory_order_relaxed);
      reactor->Finish(grpc::Status::OK);
      service->IoFinished();
    }
  };

  grpc::ServerUnaryReactor* ExecuteIo(grpc::CallbackServerContext* ctx,
                                      const vios::peer::v1::IoRequest* req,
                                      vios::peer::v1::IoResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!options_.local_devices) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                   "ExecuteIo: this agent does not serve I/O for peers"));
      return reactor;
    }
    backend::BlockDevice* device = options_.local_devices(req->pool(), req->backend());
    if (device == nullptr) {
      ++io_refused_;
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   "pool/backend: agent " + options_.member + " has no backend " +
                                       req->pool() + "/" + req->backend()));
      return reactor;
    }
    const std::string error = ValidateIo(*req, *device, options_.max_io_bytes);
    if (!error.empty()) {
      ++io_refused_;
      VIOS_LOG(kWarning, "peer I/O refused")
          .Field("identity", PeerIdentity(ctx))
          .Field("backend", req->pool() + "/" + req->backend())
          .Field("error", error);
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "ExecuteIo: " + error));
      return reactor;
    }
    auto call = std::make_unique<IoCall>();
    call->service = this;
    call->reactor = reactor;
    call->response = resp;
    call->served = &Served(PeerIdentity(ctx));
    backend::IoRequest& io = call->io;
    ToBackendOp(req->op(), &io.op);
    io.offset = req->offset();
    io.length = req->length();
    if (io.op == backend::IoOp::kRead) {
      std::string* data = resp->mutable_data();
      data->resize(req->length());
      io.read_buffer = std::span<uint8_t>(reinterpret_cast<uint8_t*>(data->data()), data->size());
    } else if (io.op == backend::IoOp::kWrite) {
      // The request message lives until Finish: the backend may read the payload in place.
      io.write_buffer = std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(req->data().data()), req->data().size());
    }
    io.completion = call.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    device->Submit(&call.release()->io);
    return reactor;
  }

  grpc::Status ApplyReservation(grpc::ServerContext* ctx,
                                const vios::peer::v1::ReservationUpdate* req,
                                vios::peer::v1::ReservationAck* resp) override {
    if (!options_.reservation_applier) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "ApplyReservation: agent " + options_.member +
                              " has no persistent-reservation component");
    }
    if (req->volume().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volume: must not be empty");
    }
    ++reservations_;
    const std::string from = PeerIdentity(ctx);
    try {
      ReservationResult r =
          options_.reservation_applier(req->volume(), req->version(), req->state_json(), from);
      resp->set_applied(r.applied);
      resp->set_version(r.version);
      resp->set_error(r.error);
    } catch (const std::exception& e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string("ApplyReservation: ") + e.what());
    }
    return grpc::Status::OK;
  }

  grpc::Status QueryReservation(grpc::ServerContext* /*ctx*/,
                                const vios::peer::v1::ReservationQuery* req,
                                vios::peer::v1::ReservationCopy* resp) override {
    if (!options_.reservation_query) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "QueryReservation: agent " + options_.member +
                              " has no persistent-reservation component");
    }
    if (req->volume().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volume: must not be empty");
    }
    try {
      ReservationCopy copy = options_.reservation_query(req->volume());
      resp->set_served(copy.served);
      resp->set_confirmed(copy.confirmed);
      resp->set_version(copy.version);
      resp->set_state_json(std::move(copy.state_json));
    } catch (const std::exception& e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string("QueryReservation: ") + e.what());
    }
    return grpc::Status::OK;
  }

  void IoFinished() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (--in_flight_ == 0) {
      idle_cv_.notify_all();
    }
  }

  // WaitIdle returns when no ExecuteIo is inside a backend.
  void WaitIdle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [this] { return in_flight_ == 0; });
  }

  std::atomic<int> data_port{0};  // the data channel's, once listening

  grpc::Status Health(grpc::ServerContext* /*ctx*/, const vios::peer::v1::HealthRequest* /*req*/,
                      vios::peer::v1::HealthResponse* resp) override {
    ++health_;
    resp->set_member(options_.member);
    resp->set_version(options_.version);
    resp->set_data_port(static_cast<uint32_t>(data_port.load()));
    if (options_.backends) {
      for (const BackendReachability& b : options_.backends()) {
        auto* out = resp->add_backends();
        out->set_pool(b.pool);
        out->set_backend(b.backend);
        out->set_reachable(b.reachable);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Deliver(grpc::ServerContext* ctx, const vios::peer::v1::ClusterMessage* req,
                       vios::peer::v1::DeliverResponse* resp) override {
    events::Message m;
    try {
      m = FromProto(*req);
    } catch (const MessageError& e) {
      ++refused_;
      VIOS_LOG(kWarning, "peer message refused")
          .Field("peer", ctx->peer())
          .Field("identity", PeerIdentity(ctx))
          .Field("error", e.what());
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string("cluster message refused: ") + e.what());
    }
    if (IsDuplicate(m.source, m.sequence)) {
      ++duplicates_;
      resp->set_accepted(true);
      return grpc::Status::OK;
    }
    m.attributes["peer.identity"] = PeerIdentity(ctx);
    m.attributes["peer.sequence"] = std::to_string(m.sequence);
    bus_.Publish(std::move(m));
    ++delivered_;
    resp->set_accepted(true);
    return grpc::Status::OK;
  }

  Stats GetStats() const {
    Stats s;
    s.health = health_.load();
    s.delivered = delivered_.load();
    s.duplicates = duplicates_.load();
    s.refused = refused_.load();
    s.io_refused = io_refused_.load();
    s.reservations = reservations_.load();
    std::lock_guard<std::mutex> lock(mu_);
    s.io_in_flight = in_flight_;
    for (const auto& [from, count] : served_) {
      s.io_served[from] = count->load(std::memory_order_relaxed);
    }
    return s;
  }

 private:
  // IsDuplicate: only an exact repeat of the last sequence from a source is a retry; a smaller
  // one means the sender restarted and counts from 1 again, so it is taken.
  bool IsDuplicate(const std::string& source, uint64_t sequence) {
    if (sequence == 0) {
      return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t& last = last_sequence_[source];
    if (last == sequence) {
      return true;
    }
    last = sequence;
    return false;
  }

  // Served returns the counter of a caller identity (bounded: the cluster's members).
  std::atomic<uint64_t>& Served(const std::string& from) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = served_[from];
    if (!slot) {
      slot = std::make_unique<std::atomic<uint64_t>>(0);
    }
    return *slot;
  }

  const PeerServerOptions& options_;
  events::EventBus& bus_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::unordered_map<std::string, uint64_t> last_sequence_;               // guarded by mu_
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>> served_;  // guarded by mu_
  uint64_t in_flight_ = 0;                                                // guarded by mu_
  std::atomic<uint64_t> health_{0}, delivered_{0}, duplicates_{0}, refused_{0};
  std::atomic<uint64_t> io_refused_{0}, reservations_{0};
};

PeerServer::PeerServer(PeerServerOptions options, events::EventBus& bus)
    : options_(std::move(options)), bus_(bus) {}

PeerServer::~PeerServer() { Stop(); }

void PeerServer::Start() {
  if (server_) {
    return;
  }
  service_ = std::make_unique<Service>(options_, bus_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen_address, ServerCredentials(options_.tls), &port_);
  builder.RegisterService(service_.get());
  // Bounded message size: a peer cannot make us allocate more than this per call (one maximal
  // write plus the other fields).
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_io_bytes) + kMessageOverhead);
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_io_bytes) + kMessageOverhead);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
  builder.AddChannelArgument(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10);
  // Clients ping every second, with or without calls (peer_client.cc), to notice a dead peer
  // fast; accept that instead of answering GOAWAY "too_many_pings" once the channel idles (peer
  // I/O travels on the data channel, so it often does).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw PeerError(14, "peer server: cannot listen on " + options_.listen_address);
  }
  if (!options_.data_listen_address.empty() && options_.local_devices) {
    data_ = std::make_unique<DataServer>(
        DataServerOptions{.listen_address = options_.data_listen_address,
                          .tls = options_.tls,
                          .host = service_.get(),
                          .allow_integrity = options_.data_allow_integrity});
    try {
      data_->Start();
    } catch (const PeerError& e) {
      // Not fatal: peer paths use IoStream when Health reports no data port.
      VIOS_LOG(kWarning, "peer data channel not available").Field("error", e.what());
      data_.reset();
    }
    if (data_) service_->data_port = data_->port();
  }
  VIOS_LOG(kInfo, "peer channel listening")
      .Field("address", options_.listen_address)
      .Field("port", port_)
      .Field("member", options_.member);
}

void PeerServer::Stop() {
  if (data_) {
    service_->data_port = 0;
    data_->Stop();  // returns once none of its requests is inside a backend
    data_.reset();
  }
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    server_.reset();
  }
  if (service_) {
    service_->WaitIdle();
  }
}

PeerServer::Stats PeerServer::GetStats() const { return service_ ? service_->GetStats() : Stats{}; }

}  // namespace vios::agent::peer
