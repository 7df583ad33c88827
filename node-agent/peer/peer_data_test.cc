// The peer data channel over real mutual TLS (certificates made with the openssl CLI): I/O
// round trips under concurrency, refused certificates and names, refused backends, bad requests
// answered without closing, malformed frames closing only their own connection, deadlines, and
// a server stop failing what is in flight as path errors; the integrity mode (negotiated, round
// trips, a changed chunk closing its connection).
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/peer/peer_data.h"
#include "node-agent/peer/peer_test_pki.h"

namespace vios::agent::peer {
namespace {

using testing::Pki;
using namespace std::chrono_literals;

constexpr uint64_t kDeviceBytes = 16 << 20;

// HoldingDevice: a MemoryBackend that can hold requests instead of running them (a stuck SAN).
class HoldingDevice final : public backend::BlockDevice {
 public:
  HoldingDevice() : memory_(kDeviceBytes) {}
  uint64_t SizeBytes() const override { return memory_.SizeBytes(); }
  uint32_t BlockSize() const override { return memory_.BlockSize(); }
  bool SupportsDiscard() const override { return true; }
  std::string Describe() const override { return "holding"; }
  void Submit(backend::IoRequest* request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (hold_) {
        held_.push_back(request);
        return;
      }
    }
    memory_.Submit(request);
  }
  void Hold(bool on) {
    std::deque<backend::IoRequest*> release;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = on;
      if (!on) release.swap(held_);
    }
    for (backend::IoRequest* r : release) memory_.Submit(r);
  }
  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }

 private:
  backend::MemoryBackend memory_;
  std::mutex mu_;
  bool hold_ = false;
  std::deque<backend::IoRequest*> held_;
};

// Host: what the PeerServer provides to the data server, over one device "p/b".
class Host final : public IoStreamHost {
 public:
  backend::BlockDevice* LocalDevice(const std::string& pool, const std::string& backend) override {
    return pool == "p" && backend == "b" ? &device : nullptr;
  }
  uint64_t MaxIoBytes() const override { return 1 << 20; }
  void IoStarted() override { ++inside; }
  void IoFinished() override { --inside; }
  void IoRefused(const std::string& identity, const std::string& error) override {
    std::lock_guard<std::mutex> lock(mu);
    refused.push_back(identity + ": " + error);
  }
  std::atomic<uint64_t>& Served(const std::string& identity) override {
    std::lock_guard<std::mutex> lock(mu);
    return served[identity];
  }
  std::vector<std::string> Refused() {
    std::lock_guard<std::mutex> lock(mu);
    return refused;
  }

  HoldingDevice device;
  std::atomic<int> inside{0};
  std::mutex mu;
  std::vector<std::string> refused;
  std::map<std::string, std::atomic<uint64_t>> served;
};

backend::IoRequest Read(uint64_t offset, std::span<uint8_t> buffer) {
  backend::IoRequest r;
  r.op = backend::IoOp::kRead;
  r.offset = offset;
  r.read_buffer = buffer;
  return r;
}
backend::IoRequest Write(uint64_t offset, std::span<const uint8_t> buffer) {
  backend::IoRequest r;
  r.op = backend::IoOp::kWrite;
  r.offset = offset;
  r.write_buffer = buffer;
  return r;
}
backend::IoRequest Range(backend::IoOp op, uint64_t offset, uint64_t length) {
  backend::IoRequest r;
  r.op = op;
  r.offset = offset;
  r.length = length;
  return r;
}

// Waiter collects completions.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::map<backend::IoRequest*, int> results;
  void Done(backend::IoRequest* r, int result) {
    std::lock_guard<std::mutex> lock(mu);
    results[r] = result;
    cv.notify_all();
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return results.size() >= n; });
  }
  int ResultOf(backend::IoRequest* r) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = results.find(r);
    return it == results.end() ? 1 : it->second;
  }
};

class DataChannelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = Pki::WithRogue(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override {
    server_ = std::make_unique<DataServer>(DataServerOptions{
        .listen_address = "127.0.0.1:0", .tls = pki_->Tls("node-a", "cluster-ca"), .host = &host_});
    server_->Start();
  }
  void TearDown() override {
    host_.device.Hold(false);
    server_->Stop();
    EXPECT_EQ(host_.inside.load(), 0);
  }

  DataClientOptions Options(const std::string& leaf = "node-b",
                            const std::string& trusted = "cluster-ca") {
    return DataClientOptions{.host = "127.0.0.1",
                             .port = static_cast<uint16_t>(server_->port()),
                             .server_name = "node-a",
                             .tls = pki_->Tls(leaf, trusted),
                             .pool = "p",
                             .backend = "b",
                             .io_deadline = 3s,
                             .connect_timeout = 3s};
  }
  std::unique_ptr<DataClient> Connect(Waiter* w, const DataClientOptions& o, std::string* error) {
    return DataClient::Connect(
        o, [w](backend::IoRequest* r, int result) { w->Done(r, result); }, error);
  }
  // RawPipe: a TLS connection that speaks frames by hand.
  std::unique_ptr<TlsPipe> RawPipe() {
    std::string error;
    auto pipe = ConnectTls("127.0.0.1", static_cast<uint16_t>(server_->port()), "node-a",
                           pki_->Tls("node-b", "cluster-ca"), std::chrono::steady_clock::now() + 3s,
                           &error);
    EXPECT_TRUE(pipe) << error;
    return pipe;
  }
  // UntilClosed reads until the server closes the pipe (true) or 5 s pass (false).
  static bool UntilClosed(TlsPipe* pipe) {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      if (!pipe->Flush() || !pipe->Fill()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  // RestartWithIntegrity replaces the server with one that grants integrity mode.
  void RestartWithIntegrity() {
    server_->Stop();
    server_ =
        std::make_unique<DataServer>(DataServerOptions{.listen_address = "127.0.0.1:0",
                                                       .tls = pki_->Tls("node-a", "cluster-ca"),
                                                       .host = &host_,
                                                       .allow_integrity = true});
    server_->Start();
  }
  // IntegrityPipe: a hand-driven connection that asked for and was granted integrity mode.
  std::unique_ptr<TlsPipe> IntegrityPipe() {
    auto pipe = RawPipe();
    if (!pipe) return nullptr;
    const std::string hello = "p\nb";
    pipe->Append(DataHeader{.kind = DataKind::kHello,
                            .op = static_cast<uint8_t>(DataProtection::kIntegrity),
                            .data_bytes = 3},
                 reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (pipe->in_size() < kDataHeaderBytes && std::chrono::steady_clock::now() < end) {
      if (!pipe->Flush() || !pipe->Fill()) break;
      std::this_thread::sleep_for(5ms);
    }
    DataHeader ack;
    EXPECT_GE(pipe->in_size(), kDataHeaderBytes);
    if (pipe->in_size() < kDataHeaderBytes) return nullptr;
    EXPECT_EQ(DecodeDataHeader(pipe->in_data(), &ack), "");
    EXPECT_EQ(ack.op, static_cast<uint8_t>(DataProtection::kIntegrity));
    pipe->Consume(kDataHeaderBytes);
    EXPECT_TRUE(pipe->StartIntegrity(false)) << pipe->error();
    return pipe;
  }
  // Works: one write and read back over a fresh client.
  void ExpectWorks() {
    Waiter w;
    std::string error;
    auto c = Connect(&w, Options(), &error);
    ASSERT_TRUE(c) << error;
    std::vector<uint8_t> out(4096, 0x5a), in(4096, 0);
    backend::IoRequest wr = Write(8192, out);
    c->Submit(&wr);
    ASSERT_TRUE(w.WaitFor(1));
    backend::IoRequest rd = Read(8192, in);
    c->Submit(&rd);
    ASSERT_TRUE(w.WaitFor(2));
    EXPECT_EQ(w.ResultOf(&wr), 0);
    EXPECT_EQ(w.ResultOf(&rd), 0);
    EXPECT_EQ(in, out);
  }

  static Pki* pki_;
  Host host_;
  std::unique_ptr<DataServer> server_;
};
Pki* DataChannelTest::pki_ = nullptr;

TEST(DataHeaderTest, RoundTripsAndRejectsGarbage) {
  DataHeader h{.kind = DataKind::kResponse,
               .op = 2,
               .error = 5,
               .data_bytes = 4096,
               .id = 0x1122334455667788ull,
               .offset = 1ull << 40,
               .length = 4096};
  uint8_t wire[kDataHeaderBytes];
  EncodeDataHeader(h, wire);
  EXPECT_EQ(std::memcmp(wire, "VDC1", 4), 0);
  DataHeader back;
  ASSERT_EQ(DecodeDataHeader(wire, &back), "");
  EXPECT_EQ(back.kind, h.kind);
  EXPECT_EQ(back.op, h.op);
  EXPECT_EQ(back.error, h.error);
  EXPECT_EQ(back.data_bytes, h.data_bytes);
  EXPECT_EQ(back.id, h.id);
  EXPECT_EQ(back.offset, h.offset);
  EXPECT_EQ(back.length, h.length);
  uint8_t bad[kDataHeaderBytes];
  std::memcpy(bad, wire, sizeof bad);
  bad[0] = 'X';
  EXPECT_NE(DecodeDataHeader(bad, &back).find("magic"), std::string::npos);
  std::memcpy(bad, wire, sizeof bad);
  bad[4] = 99;
  EXPECT_NE(DecodeDataHeader(bad, &back).find("unknown frame kind 99"), std::string::npos);
  std::memcpy(bad, wire, sizeof bad);
  bad[6] = 1;
  EXPECT_NE(DecodeDataHeader(bad, &back).find("reserved"), std::string::npos);
}

// RoundTrips: blocks of kBytes with distinct contents, written concurrently, then read back
// concurrently; then flush, write-zeroes and discard.
void RoundTrips(DataClient* client, Waiter& w, size_t kBytes, int kBlocks) {
  std::vector<std::vector<uint8_t>> out(kBlocks, std::vector<uint8_t>(kBytes));
  std::vector<std::vector<uint8_t>> in(kBlocks, std::vector<uint8_t>(kBytes));
  std::mt19937 rng(7);
  for (auto& b : out) {
    for (auto& x : b) x = static_cast<uint8_t>(rng());
  }
  std::vector<backend::IoRequest> writes(kBlocks), reads(kBlocks);
  for (int i = 0; i < kBlocks; ++i) {
    writes[i] = Write(i * kBytes, out[i]);
    client->Submit(&writes[i]);
  }
  ASSERT_TRUE(w.WaitFor(kBlocks));
  for (int i = 0; i < kBlocks; ++i) {
    reads[i] = Read(i * kBytes, in[i]);
    client->Submit(&reads[i]);
  }
  ASSERT_TRUE(w.WaitFor(2 * kBlocks));
  for (int i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(w.ResultOf(&writes[i]), 0);
    ASSERT_EQ(w.ResultOf(&reads[i]), 0);
    EXPECT_EQ(in[i], out[i]) << "block " << i;
  }
  backend::IoRequest flush = Range(backend::IoOp::kFlush, 0, 0);
  backend::IoRequest zero = Range(backend::IoOp::kWriteZeroes, 0, kBytes);
  backend::IoRequest discard = Range(backend::IoOp::kDiscard, kBytes, kBytes);
  client->Submit(&flush);
  client->Submit(&zero);
  client->Submit(&discard);
  ASSERT_TRUE(w.WaitFor(2 * kBlocks + 3));
  EXPECT_EQ(w.ResultOf(&flush), 0);
  EXPECT_EQ(w.ResultOf(&zero), 0);
  EXPECT_EQ(w.ResultOf(&discard), 0);
  backend::IoRequest again = Read(0, in[0]);
  client->Submit(&again);
  ASSERT_TRUE(w.WaitFor(2 * kBlocks + 4));
  EXPECT_EQ(in[0], std::vector<uint8_t>(kBytes, 0));
  EXPECT_FALSE(client->broken());
  EXPECT_TRUE(client->Ping());
}

TEST_F(DataChannelTest, ConcurrentIoRoundTrips) {
  Waiter w;
  std::string error;
  auto client = Connect(&w, Options(), &error);
  ASSERT_TRUE(client) << error;
  EXPECT_EQ(client->protection(), DataProtection::kEncrypt);
  RoundTrips(client.get(), w, 64 << 10, 64);
  EXPECT_EQ(host_.Served("node-b").load(), 2u * 64 + 4);  // by certificate identity
}

TEST_F(DataChannelTest, IntegrityModeRoundTripsWhenBothEndsAllowIt) {
  RestartWithIntegrity();
  DataClientOptions o = Options();
  o.protection = DataProtection::kIntegrity;
  // Small frames share chunks; 64 KiB and 1 MiB payloads are chunks of their own, received
  // straight into their buffers.
  for (const size_t bytes : {size_t{4096}, size_t{64} << 10, size_t{1} << 20}) {
    SCOPED_TRACE(bytes);
    Waiter w;
    std::string error;
    auto client = Connect(&w, o, &error);
    ASSERT_TRUE(client) << error;
    EXPECT_EQ(client->protection(), DataProtection::kIntegrity);
    RoundTrips(client.get(), w, bytes, 16);
  }
  EXPECT_TRUE(host_.Refused().empty());
}

TEST_F(DataChannelTest, IntegrityModeNeedsBothEnds) {
  Waiter w;
  std::string error;
  // The server does not allow it: the client's connection stays encrypted and works.
  DataClientOptions o = Options();
  o.protection = DataProtection::kIntegrity;
  auto asked = Connect(&w, o, &error);
  ASSERT_TRUE(asked) << error;
  EXPECT_EQ(asked->protection(), DataProtection::kEncrypt);
  RoundTrips(asked.get(), w, 4096, 8);
  // The server allows it, the client does not ask: encrypted.
  RestartWithIntegrity();
  Waiter w2;
  auto plain = Connect(&w2, Options(), &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->protection(), DataProtection::kEncrypt);
  RoundTrips(plain.get(), w2, 4096, 8);
}

TEST_F(DataChannelTest, AChangedChunkClosesOnlyItsConnection) {
  RestartWithIntegrity();
  Waiter w;
  std::string error;
  DataClientOptions o = Options();
  o.protection = DataProtection::kIntegrity;
  auto good = Connect(&w, o, &error);
  ASSERT_TRUE(good) << error;
  // A chunk whose tag does not match its bytes (as if changed on the way).
  auto pipe = IntegrityPipe();
  ASSERT_TRUE(pipe);
  uint8_t chunk[4 + kDataHeaderBytes + 16] = {kDataHeaderBytes, 0, 0, 0};
  EncodeDataHeader(DataHeader{.kind = DataKind::kPing, .id = 1}, chunk + 4);
  ASSERT_EQ(::send(pipe->fd(), chunk, sizeof chunk, 0), static_cast<ssize_t>(sizeof chunk));
  EXPECT_TRUE(UntilClosed(pipe.get()));
  ASSERT_FALSE(host_.Refused().empty());
  EXPECT_NE(host_.Refused().back().find("chunk 0 of 40 bytes failed its integrity check"),
            std::string::npos)
      << host_.Refused().back();
  // A chunk longer than allowed.
  auto big = IntegrityPipe();
  ASSERT_TRUE(big);
  const uint8_t head[4] = {0xff, 0xff, 0xff, 0x7f};
  ASSERT_EQ(::send(big->fd(), head, sizeof head, 0), 4);
  EXPECT_TRUE(UntilClosed(big.get()));
  EXPECT_NE(host_.Refused().back().find("a chunk of 2147483647 bytes"), std::string::npos)
      << host_.Refused().back();
  // The well-behaved connection never noticed.
  RoundTrips(good.get(), w, 64 << 10, 8);
}

TEST_F(DataChannelTest, RefusesCertificatesOfAnotherCaAndWrongNames) {
  Waiter w;
  std::string error;
  // A client certificate of another CA: the server refuses the handshake.
  EXPECT_FALSE(Connect(&w, Options("rogue", "cluster-ca"), &error));
  EXPECT_FALSE(error.empty());
  // The client does not trust the server's CA.
  error.clear();
  EXPECT_FALSE(Connect(&w, Options("node-b", "other-ca"), &error));
  EXPECT_NE(error.find("certificate"), std::string::npos) << error;
  // The server's certificate does not name the member the client meant.
  error.clear();
  DataClientOptions o = Options();
  o.server_name = "node-x";
  EXPECT_FALSE(Connect(&w, o, &error));
  EXPECT_NE(error.find("certificate"), std::string::npos) << error;
  ExpectWorks();  // the server is unharmed
}

TEST_F(DataChannelTest, RefusesAnUnknownBackendAtHello) {
  Waiter w;
  std::string error;
  DataClientOptions o = Options();
  o.backend = "nope";
  EXPECT_FALSE(Connect(&w, o, &error));
  EXPECT_NE(error.find("refused backend p/nope"), std::string::npos) << error;
  ExpectWorks();
}

TEST_F(DataChannelTest, AnswersABadRequestWithEinvalAndStaysUp) {
  Waiter w;
  std::string error;
  auto client = Connect(&w, Options(), &error);
  ASSERT_TRUE(client) << error;
  std::vector<uint8_t> buf(4096);
  backend::IoRequest misaligned = Read(100, buf);
  backend::IoRequest beyond = Read(kDeviceBytes, buf);
  client->Submit(&misaligned);
  client->Submit(&beyond);
  ASSERT_TRUE(w.WaitFor(2));
  EXPECT_EQ(w.ResultOf(&misaligned), -EINVAL);
  EXPECT_EQ(w.ResultOf(&beyond), -EINVAL);
  EXPECT_FALSE(client->broken());
  backend::IoRequest good = Read(0, buf);
  client->Submit(&good);
  ASSERT_TRUE(w.WaitFor(3));
  EXPECT_EQ(w.ResultOf(&good), 0);
  const auto refused = host_.Refused();
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_NE(refused[0].find("node-b: offset: 100 is not a multiple"), std::string::npos)
      << refused[0];
}

TEST_F(DataChannelTest, MalformedFramesCloseOnlyTheirConnection) {
  Waiter w;
  std::string error;
  auto good = Connect(&w, Options(), &error);
  ASSERT_TRUE(good) << error;
  struct Case {
    const char* name;
    bool hello_first;
    DataHeader header;
    const char* refusal;
  };
  const Case cases[] = {
      {"request before hello", false, DataHeader{.kind = DataKind::kRequest}, "not a hello"},
      {"oversized hello", false, DataHeader{.kind = DataKind::kHello, .data_bytes = 1 << 20},
       "at most 1024"},
      {"oversized write", true,
       DataHeader{.kind = DataKind::kRequest,
                  .op = 2,
                  .data_bytes = (1u << 20) + 4096,
                  .length = (1u << 20) + 4096},
       "at most 1048576"},
      {"data on a read", true,
       DataHeader{.kind = DataKind::kRequest, .op = 1, .data_bytes = 4096, .length = 4096},
       "at most 0"},
      {"a response from the client", true, DataHeader{.kind = DataKind::kResponse},
       "unexpected frame kind 4"},
  };
  size_t expected_refusals = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto pipe = RawPipe();
    ASSERT_TRUE(pipe);
    if (c.hello_first) {
      const std::string hello = "p\nb";
      pipe->Append(DataHeader{.kind = DataKind::kHello, .data_bytes = 3},
                   reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
    }
    pipe->Append(c.header, nullptr, 0);
    EXPECT_TRUE(UntilClosed(pipe.get()));
    ++expected_refusals;
    const auto refused = host_.Refused();
    ASSERT_EQ(refused.size(), expected_refusals);
    EXPECT_NE(refused.back().find(c.refusal), std::string::npos) << refused.back();
  }
  // Text instead of a frame.
  auto raw = RawPipe();
  ASSERT_TRUE(raw);
  const std::string text(kDataHeaderBytes, 'G');
  ASSERT_EQ(SSL_write(raw->ssl(), text.data(), static_cast<int>(text.size())),
            static_cast<int>(text.size()));
  EXPECT_TRUE(UntilClosed(raw.get()));
  EXPECT_NE(host_.Refused().back().find("bad frame magic 0x47474747"), std::string::npos);
  // The well-behaved connection never noticed.
  std::vector<uint8_t> buf(4096);
  backend::IoRequest rd = Read(0, buf);
  good->Submit(&rd);
  ASSERT_TRUE(w.WaitFor(1));
  EXPECT_EQ(w.ResultOf(&rd), 0);
  EXPECT_FALSE(good->broken());
}

TEST_F(DataChannelTest, AnUnansweredRequestTimesOutAndBreaksTheConnection) {
  Waiter w;
  std::string error;
  DataClientOptions o = Options();
  o.io_deadline = 300ms;
  auto client = Connect(&w, o, &error);
  ASSERT_TRUE(client) << error;
  host_.device.Hold(true);
  std::vector<uint8_t> a(4096), b(4096);
  backend::IoRequest first = Read(0, a);
  backend::IoRequest second = Read(4096, b);
  const auto start = std::chrono::steady_clock::now();
  client->Submit(&first);
  client->Submit(&second);
  ASSERT_TRUE(w.WaitFor(2, 5s));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(w.ResultOf(&first), -ETIMEDOUT);
  EXPECT_EQ(w.ResultOf(&second), -ETIMEDOUT);
  EXPECT_TRUE(client->broken());
  EXPECT_EQ(client->break_reason(), "peer I/O deadline exceeded");
  // A broken client fails new requests at once, as a path error.
  backend::IoRequest late = Read(0, a);
  client->Submit(&late);
  ASSERT_TRUE(w.WaitFor(3, 1s));
  EXPECT_EQ(w.ResultOf(&late), -ECONNRESET);
  // The server still has both requests inside the device; releasing them ends the connection.
  EXPECT_EQ(host_.device.held(), 2u);
  host_.device.Hold(false);
  ExpectWorks();
}

TEST_F(DataChannelTest, ServerStopFailsRequestsInFlightAsPathErrors) {
  Waiter w;
  std::string error;
  auto client = Connect(&w, Options(), &error);
  ASSERT_TRUE(client) << error;
  host_.device.Hold(true);
  std::vector<uint8_t> a(4096);
  backend::IoRequest rd = Read(0, a);
  client->Submit(&rd);
  while (host_.device.held() == 0) std::this_thread::sleep_for(5ms);
  // Stop waits for the request inside the device: release it from another thread.
  std::thread release([this] {
    std::this_thread::sleep_for(200ms);
    host_.device.Hold(false);
  });
  server_->Stop();
  release.join();
  EXPECT_EQ(host_.inside.load(), 0);
  ASSERT_TRUE(w.WaitFor(1, 5s));
  EXPECT_EQ(w.ResultOf(&rd), -ECONNRESET);  // its answer had no connection left
  EXPECT_TRUE(client->broken());
}

TEST_F(DataChannelTest, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  server_->Stop();
  server_ = std::make_unique<DataServer>(DataServerOptions{.listen_address = "127.0.0.1:0",
                                                           .tls = pki_->Tls("node-a", "cluster-ca"),
                                                           .host = &host_,
                                                           .max_connections = 2});
  server_->Start();
  auto first = RawPipe();
  auto second = RawPipe();
  ASSERT_TRUE(first && second);
  std::string error;
  auto third =
      ConnectTls("127.0.0.1", static_cast<uint16_t>(server_->port()), "node-a",
                 pki_->Tls("node-b", "cluster-ca"), std::chrono::steady_clock::now() + 3s, &error);
  EXPECT_FALSE(third);
  EXPECT_NE(error.find("TLS handshake failed"), std::string::npos) << error;
  EXPECT_EQ(server_->connections_refused(), 1u);
  first.reset();  // a slot frees once the server has seen the close
  const auto end = std::chrono::steady_clock::now() + 5s;
  std::unique_ptr<TlsPipe> again;
  while (!again && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(50ms);
    again = ConnectTls("127.0.0.1", static_cast<uint16_t>(server_->port()), "node-a",
                       pki_->Tls("node-b", "cluster-ca"), std::chrono::steady_clock::now() + 3s,
                       &error);
  }
  EXPECT_TRUE(again) << error;
}

}  // namespace
}  // namespace vios::agent::peer
