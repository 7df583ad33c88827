// ClusterAgent against a real kube-apiserver (common/testing/control_plane.h): registration and
// Lease renewal, peers, configuration changes as bus messages (with latency), served volumes,
// start from the local copy with the API server unreachable and rejoin, corrupt local state.
#include "node-agent/cluster/cluster_agent.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "common/kube/leader_election.h"
#include "common/testing/control_plane.h"
#include "node-agent/cluster/tcp_proxy_for_test.h"

namespace vios::agent::cluster {
namespace {

namespace fs = std::filesystem;
namespace res = kube::resources;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = std::chrono::seconds(20);

// Recorder captures bus messages with their arrival time.
class Recorder {
 public:
  explicit Recorder(events::EventBus& bus) {
    bus.RegisterListenerForAll("test", [this](const events::Message& m) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back({m, Clock::now()});
    });
  }
  // WaitFor returns the arrival time of the first message after index `from` matching type and
  // subject, or nullopt on timeout.
  std::optional<Clock::time_point> WaitFor(events::MessageType type, const std::string& subject,
                                           size_t from = 0, milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = from; i < got_.size(); ++i) {
          if (got_[i].first.type == type && got_[i].first.subject == subject) {
            return got_[i].second;
          }
        }
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
    return std::nullopt;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_.size();
  }
  std::vector<events::Message> Messages() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<events::Message> out;
    for (auto& g : got_) {
      out.push_back(g.first);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<events::Message, Clock::time_point>> got_;
};

class ClusterAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& cp = vios::testing::SharedControlPlane();
    config_ = kube::LoadKubeconfig(cp.KubeconfigPath());
    admin_ = std::make_unique<kube::Client>(config_);
    static int counter = 0;
    ns_ = "cluster-agent-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    admin_->Create(res::kNamespaces, "",
                   {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}});
    admin_->Create(res::kVIOSClusters, ns_,
                   {{"apiVersion", "vios.dev/v1alpha1"},
                    {"kind", "VIOSCluster"},
                    {"metadata", {{"name", "local"}}},
                    {"spec",
                     {{"pools",
                       {{{"name", "default"},
                         {"extentSize", "64Mi"},
                         {"backends",
                          {{{"name", "file0"},
                            {"file", {{"path", "/var/lib/vios/p0.img"}, {"size", "4Gi"}}}}}}}}}}}});
    char tmpl[] = "/tmp/vios-cluster-agent-XXXXXX";
    state_root_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(state_root_); }

  ClusterAgentOptions Options(const std::string& member) {
    return {.cluster = "local",
            .ns = ns_,
            .member = member,
            .peer_address = "127.0.0.1:7443",
            .version = "0.1.0-test",
            .state_dir = (state_root_ / member).string(),
            .lease_duration = std::chrono::seconds(3),
            .initial_backoff = milliseconds(100),
            .max_backoff = milliseconds(500),
            .watch_max_backoff = milliseconds(500)};
  }

  static bool Synced(const ClusterView& v, const AgentState& s) {
    return v.origin == ClusterView::Origin::kApiServer && s.registered && s.api_reachable;
  }

  json CreateVolume(const std::string& name) {
    return admin_->Create(
        res::kVIOSVolumes, ns_,
        {{"apiVersion", "vios.dev/v1alpha1"},
         {"kind", "VIOSVolume"},
         {"metadata", {{"name", name}}},
         {"spec",
          {{"cluster", "local"},
           {"pool", "default"},
           {"size", "128Mi"},
           {"accessModes", {"ReadWriteOnce"}},
           {"extents",
            {{{"backend", "file0"}, {"offset", 0}, {"length", 67108864}},
             {{"backend", "file0"}, {"offset", 134217728}, {"length", 67108864}}}}}}});
  }
  void Attach(const std::string& volume, const std::string& agent) {
    admin_->PatchStatus(res::kVIOSVolumes, ns_, volume,
                        {{"status",
                          {{"phase", "Attached"},
                           {"attachments",
                            {{{"node", agent},
                              {"agent", agent},
                              {"virtualPortIQN", "iqn.2026-11.dev.vios:" + volume}}}}}}});
  }
  // SetMemberState writes status.state as the operator does (its own field manager).
  void SetMemberState(const std::string& member, const std::string& state) {
    admin_->ApplyStatus(res::kVIOSMembers, ns_, member,
                        {{"apiVersion", "vios.dev/v1alpha1"},
                         {"kind", "VIOSMember"},
                         {"metadata", {{"name", member}, {"namespace", ns_}}},
                         {"status", {{"state", state}}}},
                        "vios-operator", true);
  }

  kube::Config config_;
  std::unique_ptr<kube::Client> admin_;
  std::string ns_;
  fs::path state_root_;
};

TEST_F(ClusterAgentTest, RegistersMemberAndRenewsLease) {
  events::EventBus bus;
  ClusterAgent agent(config_, Options("node-a"), bus);
  const auto t0 = Clock::now();
  agent.Start();
  ASSERT_TRUE(agent.WaitFor(Synced, kWait));
  std::printf(
      "[ MEASURED ] registration + first synced view: %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));

  json m = admin_->Get(res::kVIOSMembers, ns_, "node-a");
  EXPECT_EQ(m["spec"]["cluster"], "local");
  EXPECT_EQ(m["spec"]["nodeName"], "node-a");
  EXPECT_EQ(m["metadata"]["labels"]["vios.dev/cluster"], "local");
  EXPECT_EQ(m["status"]["peerAddress"], "127.0.0.1:7443");
  EXPECT_EQ(m["status"]["version"], "0.1.0-test");
  EXPECT_EQ(m["status"]["leaseName"], "node-a");

  json lease = admin_->Get(res::kLeases, ns_, "node-a");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "node-a");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 3);
  const std::string first = lease["spec"]["renewTime"];
  const std::string acquired = lease["spec"]["acquireTime"];
  std::this_thread::sleep_for(milliseconds(2500));  // > two renew intervals of 1 s
  lease = admin_->Get(res::kLeases, ns_, "node-a");
  EXPECT_NE(lease["spec"]["renewTime"], first) << "the Lease was not renewed";
  EXPECT_EQ(lease["spec"]["acquireTime"], acquired);
  EXPECT_GE(agent.State().heartbeats, 2u);

  // The operator's status.state and the agent's status fields coexist.
  SetMemberState("node-a", "Up");
  agent.SetLocalStatus(
      {.paths = {{.pool = "default", .backend = "file0", .state = "Healthy", .message = ""}},
       .virtual_ports = 2});
  ASSERT_TRUE(agent.WaitFor(
      [](const ClusterView& v, const AgentState&) { return v.self_state == "Up"; }, kWait));
  const auto deadline = Clock::now() + kWait;
  while (Clock::now() < deadline) {
    m = admin_->Get(res::kVIOSMembers, ns_, "node-a");
    if (m["status"].value("virtualPorts", 0) == 2) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(m["status"]["virtualPorts"], 2);
  EXPECT_EQ(m["status"]["healthyPaths"], 1);
  EXPECT_EQ(m["status"]["paths"][0]["backend"], "file0");
  EXPECT_EQ(m["status"]["state"], "Up") << "the agent overwrote the operator's field";
}

TEST_F(ClusterAgentTest, SeesPeersConfigChangesAndServedVolumes) {
  events::EventBus bus;
  Recorder rec(bus);
  ClusterAgent a(config_, Options("node-a"), bus);
  a.Start();
  ASSERT_TRUE(a.WaitFor(Synced, kWait));
  ASSERT_TRUE(a.Snapshot().config.has_value());
  EXPECT_EQ(a.Snapshot().config->pools.at(0).backends.at(0).file->size, 4ull << 30);

  // A peer registers: node-a sees it join, then go Down and Up as the operator marks it.
  events::EventBus bus_b;
  ClusterAgent b(config_, Options("node-b"), bus_b);
  b.Start();
  ASSERT_TRUE(rec.WaitFor(events::MessageType::kMemberJoined, "member/node-b").has_value());
  ASSERT_TRUE(a.WaitFor(
      [](const ClusterView& v, const AgentState&) {
        return v.peers.contains("node-b") && v.peers.at("node-b").peer_address == "127.0.0.1:7443";
      },
      kWait));
  SetMemberState("node-b", "Down");
  EXPECT_TRUE(rec.WaitFor(events::MessageType::kMemberDown, "member/node-b").has_value());
  SetMemberState("node-b", "Up");
  EXPECT_TRUE(rec.WaitFor(events::MessageType::kMemberUp, "member/node-b").has_value());
  // And node-b sees node-a.
  EXPECT_TRUE(b.WaitFor(
      [](const ClusterView& v, const AgentState&) { return v.peers.contains("node-a"); }, kWait));

  // Spec changes arrive as ConfigChanged; measure from the write to the bus delivery.
  std::vector<double> ms;
  std::vector<double> write_ms;  // of which: the PATCH round trip itself
  for (int i = 0; i < 10; ++i) {
    const size_t from = rec.size();
    const auto t0 = Clock::now();
    admin_->Patch(res::kVIOSClusters, ns_, "local",
                  {{"spec", {{"paths", {{"failureThreshold", 4 + i}}}}}});
    write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    auto at = rec.WaitFor(events::MessageType::kConfigChanged, "cluster/local", from);
    ASSERT_TRUE(at.has_value()) << "no ConfigChanged for change " << i;
    ms.push_back(std::chrono::duration<double, std::milli>(*at - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::sort(write_ms.begin(), write_ms.end());
  std::printf(
      "[ MEASURED ] VIOSCluster spec change -> ConfigChanged on the bus: p50 %.1f ms, "
      "max %.1f ms (10 changes; the PATCH call itself p50 %.1f ms)\n",
      ms[ms.size() / 2], ms.back(), write_ms[write_ms.size() / 2]);
  EXPECT_EQ(a.Snapshot().config->spec["paths"]["failureThreshold"], 13);

  // Served volumes: attached to node-a -> VolumeAttached with its extents; to node-b: not ours.
  CreateVolume("pvc-1");
  CreateVolume("pvc-2");
  Attach("pvc-1", "node-a");
  Attach("pvc-2", "node-b");
  ASSERT_TRUE(rec.WaitFor(events::MessageType::kVolumeAttached, "volume/pvc-1").has_value());
  ClusterView v = a.Snapshot();
  ASSERT_TRUE(v.volumes.contains("pvc-1"));
  EXPECT_FALSE(v.volumes.contains("pvc-2"));
  EXPECT_EQ(v.volumes.at("pvc-1").extents.size(), 2u);
  EXPECT_EQ(v.volumes.at("pvc-1").extents[1].offset, 134217728u);
  EXPECT_TRUE(b.WaitFor(
      [](const ClusterView& bv, const AgentState&) {
        return bv.volumes.contains("pvc-2") && !bv.volumes.contains("pvc-1");
      },
      kWait));
  admin_->Delete(res::kVIOSVolumes, ns_, "pvc-1");
  EXPECT_TRUE(rec.WaitFor(events::MessageType::kVolumeDetached, "volume/pvc-1").has_value());
}

TEST_F(ClusterAgentTest, ComesUpFromLocalCopyWhileApiUnreachableAndRejoins) {
  const std::string api = config_.server.substr(config_.server.find("://") + 3);
  testing::TcpProxy proxy(api);
  proxy.Start();
  kube::Config via_proxy = config_;
  via_proxy.server = "https://127.0.0.1:" + std::to_string(proxy.port());
  CreateVolume("pvc-9");
  Attach("pvc-9", "node-a");
  {
    events::EventBus bus;
    ClusterAgent agent(via_proxy, Options("node-a"), bus);
    agent.Start();
    ASSERT_TRUE(agent.WaitFor(
        [](const ClusterView& v, const AgentState& s) {
          return Synced(v, s) && v.volumes.contains("pvc-9");
        },
        kWait));
    agent.Stop();
  }
  ASSERT_TRUE(fs::exists(state_root_ / "node-a" / LocalStateStore::kFileName));

  // The API server becomes unreachable; the agent restarts.
  proxy.Stop();
  events::EventBus bus;
  Recorder rec(bus);
  ClusterAgent agent(via_proxy, Options("node-a"), bus);
  const auto t0 = Clock::now();
  agent.Start();
  ClusterView v = agent.Snapshot();  // the local copy is there as soon as Start returns
  std::printf(
      "[ MEASURED ] start from local copy: %lld us\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  EXPECT_EQ(v.origin, ClusterView::Origin::kLocalCopy);
  EXPECT_TRUE(agent.State().serving_from_local_copy);
  ASSERT_TRUE(v.config.has_value());
  EXPECT_EQ(v.config->pools.at(0).name, "default");
  ASSERT_TRUE(v.volumes.contains("pvc-9"));
  EXPECT_EQ(v.volumes.at("pvc-9").extents.size(), 2u);
  EXPECT_TRUE(rec.WaitFor(events::MessageType::kVolumeAttached, "volume/pvc-9").has_value());
  EXPECT_TRUE(agent.WaitFor(
      [](const ClusterView&, const AgentState& s) { return s.heartbeat_failures >= 2; }, kWait));
  EXPECT_FALSE(agent.State().api_reachable);
  EXPECT_TRUE(agent.State().serving_from_local_copy);

  // Meanwhile the configuration changes; the agent learns it when it rejoins.
  admin_->Patch(res::kVIOSClusters, ns_, "local",
                {{"spec", {{"paths", {{"failureThreshold", 9}}}}}});
  const size_t from = rec.size();
  const auto back = Clock::now();
  proxy.Start();
  ASSERT_TRUE(
      agent.WaitFor([](const ClusterView& cv,
                       const AgentState& s) { return Synced(cv, s) && !s.serving_from_local_copy; },
                    kWait));
  std::printf("[ MEASURED ] rejoin after the API server returned: %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - back).count()));
  EXPECT_TRUE(rec.WaitFor(events::MessageType::kConfigChanged, "cluster/local", from).has_value());
  EXPECT_EQ(agent.Snapshot().config->spec["paths"]["failureThreshold"], 9);
  EXPECT_TRUE(agent.Snapshot().volumes.contains("pvc-9"));
  // The rejoin brought nothing new about pvc-9: no second VolumeAttached.
  int attached = 0;
  for (const auto& m : rec.Messages()) {
    attached += m.type == events::MessageType::kVolumeAttached ? 1 : 0;
  }
  EXPECT_EQ(attached, 1);
  // The cut and the restart kept the member registered, and its Lease renews again.
  json lease = admin_->Get(res::kLeases, ns_, "node-a");
  EXPECT_EQ(lease["spec"]["holderIdentity"], "node-a");
}

TEST_F(ClusterAgentTest, CorruptLocalStateIsReportedMovedAsideAndRefetched) {
  const fs::path dir = state_root_ / "node-a";
  fs::create_directories(dir);
  std::ofstream(dir / LocalStateStore::kFileName) << "{\"format\":\"vios-agent-state\"\ngarbage";
  events::EventBus bus;
  ClusterAgent agent(config_, Options("node-a"), bus);
  agent.Start();
  EXPECT_TRUE(agent.State().local_state_corrupt);
  EXPECT_NE(agent.State().local_state_error.find("moved to"), std::string::npos)
      << agent.State().local_state_error;
  EXPECT_EQ(agent.Snapshot().origin, ClusterView::Origin::kEmpty);
  ASSERT_TRUE(agent.WaitFor(Synced, kWait));
  EXPECT_TRUE(agent.Snapshot().config.has_value());
  int aside = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    aside += e.path().filename().string().find(".corrupt-") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(aside, 1);
  // A fresh, valid copy replaced it.
  EXPECT_TRUE(agent.WaitFor(
      [&](const ClusterView&, const AgentState&) {
        return LocalStateStore(dir).Load().outcome == LocalStateStore::Outcome::kLoaded;
      },
      kWait));
  // And a Kubernetes Event says so.
  bool found = false;
  const auto deadline = Clock::now() + kWait;
  while (!found && Clock::now() < deadline) {
    for (const json& e : admin_->List(res::kEvents, ns_).items) {
      found = found || (e.value("reason", "") == "LocalStateCorrupt" &&
                        e["regarding"].value("name", "") == "node-a");
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(found) << "no LocalStateCorrupt Event";
}

}  // namespace
}  // namespace vios::agent::cluster
