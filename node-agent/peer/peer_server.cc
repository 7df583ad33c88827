// PeerServer: Health and Deliver over mutual TLS (peer_server.h).
#include "node-agent/peer/peer_server.h"

#include <chrono>

#include <grpcpp/server_builder.h>

#include "common/log/log.h"
#include "node-agent/peer/peer_message.h"

namespace vios::agent::peer {
namespace {

// PeerIdentity is the common name of the verified client certificate ("" if none).
std::string PeerIdentity(const grpc::ServerContext* ctx) {
  auto auth = ctx->auth_context();
  if (!auth) {
    return "";
  }
  auto cn = auth->FindPropertyValues("x509_common_name");
  return cn.empty() ? "" : std::string(cn.front().data(), cn.front().size());
}

}  // namespace

class PeerServer::Service final : public vios::peer::v1::Peer::Service {
 public:
  Service(const PeerServerOptions& options, events::EventBus& bus) : options_(options), bus_(bus) {}

  grpc::Status Health(grpc::ServerContext* /*ctx*/, const vios::peer::v1::HealthRequest* /*req*/,
                      vios::peer::v1::HealthResponse* resp) override {
    ++health_;
    resp->set_member(options_.member);
    resp->set_version(options_.version);
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
    return {health_.load(), delivered_.load(), duplicates_.load(), refused_.load()};
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

  const PeerServerOptions& options_;
  events::EventBus& bus_;
  std::mutex mu_;
  std::unordered_map<std::string, uint64_t> last_sequence_;  // guarded by mu_
  std::atomic<uint64_t> health_{0}, delivered_{0}, duplicates_{0}, refused_{0};
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
  // Bounded message size: a peer cannot make us allocate more than this per call.
  builder.SetMaxReceiveMessageSize(8 << 20);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw PeerError(14, "peer server: cannot listen on " + options_.listen_address);
  }
  VIOS_LOG(kInfo, "peer channel listening")
      .Field("address", options_.listen_address)
      .Field("port", port_)
      .Field("member", options_.member);
}

void PeerServer::Stop() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    server_.reset();
  }
}

PeerServer::Stats PeerServer::GetStats() const { return service_ ? service_->GetStats() : Stats{}; }

}  // namespace vios::agent::peer
