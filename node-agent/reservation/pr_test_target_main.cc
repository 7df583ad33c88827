// pr_test_target: test-only iSCSI target serving one LU (memory-backed) with the
// LocalPersistentReservations policy, for running libiscsi's iscsi-test-cu PR suites against the
// reservation model before the agent installs it per volume.
//
//   pr_test_target [port] [blocks]      # prints "listening on 127.0.0.1:PORT target IQN"
//   iscsi-test-cu -d -i IQN1 -I IQN2 -t SCSI.ProutReserve iscsi://127.0.0.1:PORT/IQN/0
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "common/log/log.h"
#include "node-agent/backend/memory_backend.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/scsi/scsi_device.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace vios;
  const uint16_t port = argc > 1 ? static_cast<uint16_t>(std::atoi(argv[1])) : 0;
  const uint64_t blocks = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 65536;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  log::SetComponent("pr_test_target");

  backend::MemoryBackend disk(blocks * 512, 512);
  reservation::LocalPersistentReservations pr;
  std::string error;
  if (!pr.Init(&error)) {
    std::fprintf(stderr, "pr_test_target: %s\n", error.c_str());
    return 1;
  }
  scsi::LogicalUnitConfig lu_config;
  lu_config.volume_id = "pr-test";
  auto lu = std::make_shared<scsi::LogicalUnit>(&disk, lu_config, &pr);
  scsi::ScsiDevice device;
  device.AddLun(0, lu);
  // Unit attentions the standard requires for other nexuses (SPC-4 §5.13.11).
  pr.SetUnitAttentionSink([&device](const reservation::PrUnitAttention& ua) {
    device.EstablishUnitAttention(ua.port.InitiatorPort(), ua.port.targetPort, 0, ua.asc);
  });

  iscsi::TargetRegistry registry;
  iscsi::TargetConfig config;
  config.iqn = "iqn.2026-11.dev.vios:pr-test";
  config.allowed_initiators = {"*"};
  registry.Add(std::make_shared<iscsi::Target>(config, &device));
  iscsi::Server server(iscsi::ServerConfig{}, &registry);
  server.Start();
  const uint16_t bound = server.AddPortal("127.0.0.1", port, 1, &error);
  if (bound == 0) {
    std::fprintf(stderr, "pr_test_target: %s\n", error.c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u target %s\n", bound, config.iqn.c_str());
  std::fflush(stdout);
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server.Stop();
  return 0;
}
