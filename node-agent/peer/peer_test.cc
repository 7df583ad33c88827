// Peer channel over real mutual TLS: certificates from the same CA work, a certificate from
// another CA is refused (either side), a wrong server name is refused, malformed messages are
// refused without hurting the server. Certificates are made with the openssl CLI per test run.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "common/events/event_bus.h"
#include "node-agent/peer/peer_client.h"
#include "node-agent/peer/peer_fanout.h"
#include "node-agent/peer/peer_server.h"
#include "node-agent/peer/peer_test_pki.h"

namespace vios::agent::peer {
namespace {

namespace fs = std::filesystem;
using testing::Pki;  // peer_test_pki.h, shared with router/peer_path_test

class PeerChannelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = Pki::WithRogue(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void StartServer(const std::string& leaf = "node-a",
                   std::function<ReservationCopy(const std::string&)> reservation_query = {}) {
    server_ = std::make_unique<PeerServer>(
        PeerServerOptions{.listen_address = "127.0.0.1:0",
                          .member = "node-a",
                          .version = "0.1.0-test",
                          .tls = pki_->Tls(leaf, "cluster-ca"),
                          .backends =
                              [] {
                                return std::vector<BackendReachability>{
                                    {.pool = "default", .backend = "file0", .reachable = true}};
                              },
                          .reservation_query = std::move(reservation_query)},
        bus_);
    server_->Start();
    bus_.RegisterListenerForAll("capture", [this](const events::Message& m) {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back(m);
    });
  }

  PeerClient Client(const std::string& leaf, const std::string& trusted_ca,
                    const std::string& server_name = "node-a") {
    return PeerClient({.address = "127.0.0.1:" + std::to_string(server_->port()),
                       .server_name = server_name,
                       .member = leaf,
                       .tls = pki_->Tls(leaf, trusted_ca),
                       .deadline = std::chrono::seconds(3)});
  }

  std::vector<events::Message> Received() {
    bus_.Flush();
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

  static Pki* pki_;
  std::mutex mu_;
  std::vector<events::Message> received_;  // guarded by mu_; declared before bus_ (outlives it)
  events::EventBus bus_;
  std::unique_ptr<PeerServer> server_;
};

Pki* PeerChannelTest::pki_ = nullptr;

TEST_F(PeerChannelTest, HealthWorksWithCertificatesFromTheClusterCa) {
  StartServer();
  PeerClient client = Client("node-b", "cluster-ca");
  auto h = client.Health();
  EXPECT_EQ(h.member(), "node-a");
  EXPECT_EQ(h.version(), "0.1.0-test");
  ASSERT_EQ(h.backends_size(), 1);
  EXPECT_EQ(h.backends(0).backend(), "file0");
  EXPECT_TRUE(h.backends(0).reachable());
  EXPECT_EQ(server_->GetStats().health, 1u);

  // Round-trip latency of Health on an established channel.
  std::vector<double> us;
  for (int i = 0; i < 200; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    client.Health();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("[ MEASURED ] peer Health round trip over mTLS: p50 %.0f us, p99 %.0f us\n",
              us[us.size() / 2], us[us.size() * 99 / 100]);
}

TEST_F(PeerChannelTest, QueryReservationAnswersWithThisAgentsCopy) {
  StartServer("node-a", [](const std::string& volume) {
    if (volume != "pvc-1") return ReservationCopy{};  // Not served here.
    return ReservationCopy{
        .served = true, .confirmed = true, .version = 7, .state_json = R"({"generation":3})"};
  });
  auto channel = Client("node-b", "cluster-ca").channel();
  ReservationCopy copy;
  std::string error;
  auto query = [&](const std::string& volume) {
    return QueryReservationOn(channel, "node-a", "node-b", volume, std::chrono::seconds(3), &copy,
                              &error);
  };
  ASSERT_TRUE(query("pvc-1")) << error;
  EXPECT_TRUE(copy.served);
  EXPECT_TRUE(copy.confirmed);
  EXPECT_EQ(copy.version, 7u);
  EXPECT_EQ(copy.state_json, R"({"generation":3})");
  ASSERT_TRUE(query("pvc-2")) << error;
  EXPECT_FALSE(copy.served);
  EXPECT_FALSE(query(""));
  EXPECT_NE(error.find("volume: must not be empty"), std::string::npos) << error;

  StartServer();  // No reservation component: the call is refused, not answered emptily.
  channel = Client("node-b", "cluster-ca").channel();
  EXPECT_FALSE(query("pvc-1"));
  EXPECT_NE(error.find("no persistent-reservation component"), std::string::npos) << error;
}

TEST_F(PeerChannelTest, DeliverReachesThePeersBusOnceWithTheCallersIdentity) {
  StartServer();
  PeerClient client = Client("node-b", "cluster-ca");
  events::Message m;
  m.type = events::MessageType::kPathLost;
  m.source = "node-b";
  m.subject = "backend/san0";
  m.text = "path to san0 lost";
  m.attributes = {{"pool", "default"}};
  m.sequence = 7;
  client.Deliver(m);
  client.Deliver(m);  // a retry of the same message
  auto got = Received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, events::MessageType::kPathLost);
  EXPECT_EQ(got[0].source, "node-b");
  EXPECT_EQ(got[0].subject, "backend/san0");
  EXPECT_EQ(got[0].attributes.at("pool"), "default");
  EXPECT_EQ(got[0].attributes.at("peer.identity"), "node-b");
  EXPECT_EQ(got[0].attributes.at("peer.sequence"), "7");
  EXPECT_EQ(server_->GetStats().duplicates, 1u);
}

TEST_F(PeerChannelTest, ClientCertificateFromAnotherCaIsRefused) {
  StartServer();
  // The rogue trusts the cluster CA (so it accepts the server) but its own certificate is not
  // from it: the server must refuse the handshake.
  PeerClient client = Client("rogue", "cluster-ca");
  try {
    client.Health();
    FAIL() << "a client with a certificate from another CA was served";
  } catch (const PeerError& e) {
    EXPECT_EQ(e.code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE)) << e.what();
    EXPECT_NE(std::string(e.what()).find("mutual-TLS"), std::string::npos) << e.what();
  }
  events::Message m;
  m.type = events::MessageType::kMemberDown;
  m.source = "rogue";
  EXPECT_THROW(client.Deliver(m), PeerError);
  EXPECT_TRUE(Received().empty());
  EXPECT_EQ(server_->GetStats().health, 0u);
  // The server keeps serving legitimate peers.
  EXPECT_EQ(Client("node-b", "cluster-ca").Health().member(), "node-a");
}

TEST_F(PeerChannelTest, ServerCertificateFromAnotherCaIsRefusedByTheClient) {
  StartServer("rogue");
  PeerClient client = Client("node-b", "cluster-ca", "rogue");
  EXPECT_THROW(client.Health(), PeerError);
  EXPECT_EQ(server_->GetStats().health, 0u);
}

TEST_F(PeerChannelTest, ServerCertificateForAnotherNameIsRefused) {
  StartServer();
  // node-a's certificate is valid, but the client wanted node-z.
  PeerClient client = Client("node-b", "cluster-ca", "node-z");
  EXPECT_THROW(client.Health(), PeerError);
  EXPECT_EQ(server_->GetStats().health, 0u);
}

TEST_F(PeerChannelTest, MalformedMessageIsRefusedAndTheServerKeepsServing) {
  StartServer();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("node-a");
  auto channel =
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->port()),
                                ChannelCredentials(pki_->Tls("node-b", "cluster-ca")), args);
  auto stub = vios::peer::v1::Peer::NewStub(channel);
  vios::peer::v1::ClusterMessage bad;
  bad.set_type("NoSuchType");
  bad.set_source("node-b");
  grpc::ClientContext ctx;
  vios::peer::v1::DeliverResponse resp;
  grpc::Status st = stub->Deliver(&ctx, bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("NoSuchType"), std::string::npos) << st.error_message();
  EXPECT_EQ(server_->GetStats().refused, 1u);
  EXPECT_TRUE(Received().empty());
  EXPECT_EQ(Client("node-b", "cluster-ca").Health().member(), "node-a");
}

TEST_F(PeerChannelTest, MissingCertificateFileIsAClearError) {
  PeerTls tls = pki_->Tls("node-b", "cluster-ca");
  tls.cert_file = (pki_->dir() / "absent.crt").string();
  try {
    PeerClient client(
        {.address = "127.0.0.1:1", .server_name = "", .member = "node-b", .tls = tls});
    FAIL() << "constructed a client without a certificate";
  } catch (const PeerError& e) {
    EXPECT_NE(std::string(e.what()).find("absent.crt"), std::string::npos) << e.what();
  }
}

TEST_F(PeerChannelTest, DeadPeerFailsWithinTheDeadline) {
  PeerClient client({.address = "127.0.0.1:1",
                     .server_name = "node-a",
                     .member = "node-b",
                     .tls = pki_->Tls("node-b", "cluster-ca"),
                     .deadline = std::chrono::milliseconds(500)});
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(client.Health(), PeerError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(PeerChannelTest, FanoutSendsOwnPathMessagesToPeersInOrder) {
  StartServer();           // the peer: node-a
  events::EventBus local;  // node-b's bus
  const std::string addr = "127.0.0.1:" + std::to_string(server_->port());
  PeerFanout fanout({.member = "node-b",
                     .tls = pki_->Tls("node-b", "cluster-ca"),
                     .peers =
                         [&] {
                           return std::vector<PeerTarget>{{"node-a", addr}};
                         }},
                    local);
  auto msg = [](events::MessageType type, const std::string& source, const std::string& subject) {
    events::Message m;
    m.type = type;
    m.source = source;
    m.subject = subject;
    return m;
  };
  for (int i = 0; i < 20; ++i) {
    local.Publish(msg(events::MessageType::kPathLost, "node-b", "backend/b" + std::to_string(i)));
  }
  // Not sent: a message relayed from another member, and a type peers learn elsewhere.
  local.Publish(msg(events::MessageType::kPathLost, "node-c", "x"));
  local.Publish(msg(events::MessageType::kMemberJoined, "node-b", "y"));
  local.Flush();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fanout.GetStats().sent < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto got = Received();
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(got[i].subject, "backend/b" + std::to_string(i));
    EXPECT_EQ(got[i].source, "node-b");
  }
  EXPECT_EQ(fanout.GetStats().failed, 0u);
}

}  // namespace
}  // namespace vios::agent::peer
