// libFuzzer target for the iSCSI target's network-facing code (DESIGN.md §10). Each input is
// (1) parsed directly by the receive state machine, text key parser, operational negotiator and
// CHAP authenticator, and (2) written into a live Server connection over a socketpair — raw, so
// that login negotiation sees hostile bytes, or behind a valid login when the first byte is odd,
// so that the full feature phase handlers do. A crash, sanitizer report or hang is a bug.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "common/log/log.h"
#include "node-agent/iscsi/chap.h"
#include "node-agent/iscsi/fake_device_test_util.h"
#include "node-agent/iscsi/negotiation.h"
#include "node-agent/iscsi/pdu_reader.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/text_keys.h"

namespace vios::iscsi {
namespace {

constexpr char kTarget[] = "iqn.2026-11.dev.vios:fuzz";
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:fuzzer";

struct World {
  testing::FakeDevice device;
  TargetRegistry registry;
  std::unique_ptr<Server> server;
  World() {
    log::SetLevel(log::Level::kError);
    TargetConfig config;
    config.iqn = kTarget;
    config.allowed_initiators = {kInitiator};
    registry.Add(std::make_shared<Target>(config, &device));
    ServerConfig sc;
    sc.limits.max_recv_data_segment_length = 65536;
    server = std::make_unique<Server>(sc, &registry);
    server->Start();
  }
};

World& GetWorld() {
  static World* world = new World();  // Never destroyed: loops keep running between inputs.
  return *world;
}

void AppendPdu(std::vector<uint8_t>* out, Bhs bhs, const std::string& text) {
  bhs.SetDataSegmentLength(static_cast<uint32_t>(text.size()));
  out->insert(out->end(), bhs.bytes.begin(), bhs.bytes.end());
  out->insert(out->end(), text.begin(), text.end());
  out->resize(out->size() + PadLength(static_cast<uint32_t>(text.size())), 0);
}

std::vector<uint8_t> ValidLogin() {
  std::vector<uint8_t> out;
  Bhs b;
  b.SetOpcode(Opcode::kLoginRequest);
  b.bytes[0] |= 0x40;
  b.SetFlags(0x80 | 0x01);  // T, CSG=0, NSG=1.
  b.bytes[8] = 0x80;
  b.SetField32(24, 1);
  AppendPdu(&out, b,
            std::string("InitiatorName=") + kInitiator + '\0' + "TargetName=" + kTarget + '\0' +
                "AuthMethod=None" + '\0');
  b.SetFlags(0x80 | 0x04 | 0x03);  // T, CSG=1, NSG=3.
  AppendPdu(&out, b, std::string("InitialR2T=No\0ImmediateData=Yes\0", 32));
  return out;
}

void ParseDirectly(const uint8_t* data, size_t size) {
  PduReader reader;
  reader.SetLimits(65536, size > 0 && (data[0] & 2), size > 0 && (data[0] & 4));
  reader.Feed({data, size});
  Pdu pdu;
  TargetLimits limits;
  ChapCredentials creds{"user", "secretsecret12", "target", "mutualsecret34"};
  for (int i = 0; i < 64 && reader.Next(&pdu) == PduReader::Result::kPdu; ++i) {
    TextKeys keys;
    std::string error;
    if (!keys.Parse(pdu.data, &error)) continue;
    SessionParams params;
    Negotiator negotiator(limits, &params);
    TextKeys response;
    for (const auto& [k, v] : keys.pairs()) negotiator.Respond(k, v, &response);
    negotiator.Finish(&response);
    ChapAuthenticator chap(creds);
    std::string why;
    if (chap.Step(keys, &response, &why) == ChapAuthenticator::Result::kContinue) {
      chap.Step(keys, &response, &why);
    }
  }
}

void DriveServer(const uint8_t* data, size_t size) {
  World& world = GetWorld();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
  uint64_t closed_before = world.server->connections_closed();
  world.server->AdoptConnection(fds[0], PortalInfo{"127.0.0.1", 3260, 1});
  std::vector<uint8_t> input;
  if (size > 0 && (data[0] & 1)) input = ValidLogin();
  input.insert(input.end(), data + (size > 0 ? 1 : 0), data + size);
  // A reader thread drains responses so the target never blocks on a full socket.
  std::thread drain([fd = fds[1]] {
    uint8_t buf[65536];
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
  });
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = send(fds[1], input.data() + off, input.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  shutdown(fds[1], SHUT_WR);
  // The target closes on EOF; wait until the connection is fully torn down.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (world.server->connections_closed() == closed_before) {
    if (std::chrono::steady_clock::now() > deadline) __builtin_trap();  // Hang = bug.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  shutdown(fds[1], SHUT_RDWR);
  drain.join();
  close(fds[1]);
}

}  // namespace
}  // namespace vios::iscsi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  vios::iscsi::ParseDirectly(data, size);
  vios::iscsi::DriveServer(data, size);
  return 0;
}
