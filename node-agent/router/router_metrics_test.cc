// RouterMetrics: exact family and label names (a contract with the chart's alerts), values that
// follow the router's state, peer I/O counted per peer, served counts per caller.
#include "node-agent/router/router_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "node-agent/backend/backend_test_util.h"
#include "node-agent/backend/memory_backend.h"

namespace vios::router {
namespace {

using backend::IoOp;
using backend::MemoryBackend;
using backend::testing::RunIo;
using namespace std::chrono_literals;

class StaticPeer final : public Path {
 public:
  StaticPeer(std::string name, backend::BlockDevice* device) : name_(name), device_(device) {}
  std::string Name() const override { return name_; }
  PathHealth Health() const override { return PathHealth::kHealthy; }
  backend::BlockDevice* Device() override { return device_; }
  void ReportResult(int) override {}
  std::vector<std::pair<const char*, uint64_t>> TransportCounts() const override {
    return {{"data", 7}, {"stream", 2}};
  }
  const char* DataChannel() const override { return "integrity"; }

 private:
  std::string name_;
  backend::BlockDevice* device_;
};

std::string Text(const RouterMetrics& m) {
  return prometheus::TextSerializer().Serialize(m.Collect());
}

TEST(RouterMetricsTest, ExportsPathStateReroutesPeerIoProbesAndServedCounts) {
  auto disk = std::make_unique<MemoryBackend>(1 << 20);
  MemoryBackend* local = disk.get();
  Router router("default/san0", std::move(disk),
                RouterOptions{.health = {.heal_on_io_success = false}});
  router.StartProber({.interval = 1h, .timeout = 1s});
  MemoryBackend peer_disk(1 << 20);
  router.AddPath(std::make_unique<StaticPeer>("peer:node-b", &peer_disk));
  RouterMetrics metrics;
  metrics.AddRouter("default", "san0", &router);
  metrics.SetServedSource([] { return std::map<std::string, uint64_t>{{"node-c", 42}}; });

  std::string t = Text(metrics);
  EXPECT_NE(
      t.find(R"(vios_path_health{backend="san0",pool="default",path="local",state="healthy"} 1)"),
      std::string::npos)
      << t;
  EXPECT_NE(
      t.find(R"(vios_path_health{backend="san0",pool="default",path="local",state="lost"} 0)"),
      std::string::npos);
  EXPECT_NE(t.find(R"(vios_rerouted{backend="san0",pool="default"} 0)"), std::string::npos);
  EXPECT_NE(t.find(R"(vios_peer_io_served_total{from="node-c"} 42)"), std::string::npos);

  local->FailNext(-ENOTCONN);
  std::vector<uint8_t> data(4096, 1);
  ASSERT_EQ(RunIo(router, IoOp::kWrite, 0, data), 0);  // rerouted through node-b
  ASSERT_EQ(RunIo(router, IoOp::kRead, 0, data), 0);
  std::this_thread::sleep_for(20ms);
  t = Text(metrics);
  EXPECT_NE(
      t.find(R"(vios_path_health{backend="san0",pool="default",path="local",state="lost"} 1)"),
      std::string::npos)
      << t;
  EXPECT_NE(t.find(R"(vios_rerouted{backend="san0",pool="default"} 1)"), std::string::npos);
  EXPECT_NE(t.find(R"(vios_reroutes_total{backend="san0",pool="default",reason="io_error"} 1)"),
            std::string::npos);
  EXPECT_NE(
      t.find(
          R"(vios_peer_io_operations_total{backend="san0",pool="default",op="write",peer="node-b"} 1)"),
      std::string::npos);
  EXPECT_NE(
      t.find(
          R"(vios_peer_io_bytes_total{backend="san0",pool="default",op="read",peer="node-b"} 4096)"),
      std::string::npos);
  EXPECT_NE(
      t.find(
          R"(vios_peer_io_latency_seconds_count{backend="san0",pool="default",peer="node-b"} 2)"),
      std::string::npos);
  EXPECT_NE(
      t.find(
          R"(vios_peer_io_transport_total{backend="san0",pool="default",peer="node-b",transport="data"} 7)"),
      std::string::npos);
  EXPECT_NE(
      t.find(
          R"(vios_peer_data_channel{backend="san0",pool="default",peer="node-b",protection="integrity"} 1)"),
      std::string::npos)
      << t;
  EXPECT_NE(
      t.find(
          R"(vios_peer_data_channel{backend="san0",pool="default",peer="node-b",protection="encrypt"} 0)"),
      std::string::npos);
  EXPECT_NE(t.find(R"(vios_path_probes_total{backend="san0",pool="default",result="success"} 1)"),
            std::string::npos);
  EXPECT_NE(t.find("vios_rerouted_seconds_total{backend=\"san0\",pool=\"default\"} 0.0"),
            std::string::npos);
  metrics.RemoveRouter("default", "san0");
  EXPECT_EQ(Text(metrics).find("san0"), std::string::npos);
}

}  // namespace
}  // namespace vios::router
