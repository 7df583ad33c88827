// iscsi_fake_target: serves one in-memory FakeDevice target on 127.0.0.1 for manual interop and
// quick load checks of the transport alone (the agent binary serves real volumes).
//
//   iscsi_fake_target [port] [event_loops] [blocks]
//   iscsi-perf -i iqn.2026-11.dev.vios:perf iscsi://127.0.0.1:PORT/iqn.2026-11.dev.vios:fake/0
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "common/log/log.h"
#include "node-agent/iscsi/fake_device_test_util.h"
#include "node-agent/iscsi/server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace vios::iscsi;
  uint16_t port = argc > 1 ? static_cast<uint16_t>(std::atoi(argv[1])) : 3260;
  unsigned loops = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 1;
  uint64_t blocks = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 262144;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  testing::FakeDevice device(blocks);
  TargetRegistry registry;
  TargetConfig config;
  config.iqn = "iqn.2026-11.dev.vios:fake";
  config.allowed_initiators = {"*"};
  registry.Add(std::make_shared<Target>(config, &device));
  ServerConfig server_config;
  server_config.event_loops = loops;
  Server server(server_config, &registry);
  server.Start();
  std::string error;
  uint16_t bound = server.AddPortal("127.0.0.1", port, 1, &error);
  if (bound == 0) {
    std::fprintf(stderr, "iscsi_fake_target: %s\n", error.c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u target %s\n", bound, config.iqn.c_str());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.Stop();
  auto& c = registry.Find(config.iqn)->counters();
  std::printf("commands=%llu read_bytes=%llu write_bytes=%llu errors=%llu\n",
              static_cast<unsigned long long>(c.commands.load()),
              static_cast<unsigned long long>(c.read_bytes.load()),
              static_cast<unsigned long long>(c.write_bytes.load()),
              static_cast<unsigned long long>(c.errors.load()));
  return 0;
}
