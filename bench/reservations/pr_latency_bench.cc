// pr_latency_bench: PERSISTENT RESERVE OUT latency (REGISTER, RESERVE) through a LogicalUnit with
// the reservation policy, for three set-ups:
//   file  - one agent, FilePrStateStore (local mode, fsync + rename per change)
//   kube1 - one agent, KubePrStateStore on a real kube-apiserver (cluster mode, no peers)
//   kube3 - three agents on one VIOSVolume, the issuing one notifies the two others
//           (in-process PrPeerNotifier: the peer channel's RPC cost is not included)
// Each iteration: REGISTER (0 -> key), RESERVE (Write Exclusive), RELEASE, REGISTER (key -> 0).
//
//   pr_latency_bench [iterations]     (needs the control plane tools, see common/testing)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/testing/control_plane.h"
#include "node-agent/reservation/kube_pr_state_store.h"
#include "node-agent/reservation/pr_cluster_test_util.h"

namespace {

using namespace std::chrono_literals;
using vios::reservation::ClusterOptions;
using vios::reservation::ProutAction;
using vios::reservation::testing::Agent;
using vios::reservation::testing::InProcessNotifier;
namespace res = vios::kube::resources;
using Clock = std::chrono::steady_clock;

struct Samples {
  std::vector<double> register_us;
  std::vector<double> reserve_us;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

double Timed(Agent& agent, ProutAction a, uint64_t key, uint64_t sa_key, uint8_t type) {
  const auto start = Clock::now();
  const vios::scsi::Status status = agent.ProutWait(1, a, key, sa_key, type);
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  if (status != vios::scsi::Status::kGood) {
    std::fprintf(stderr, "PR OUT %d failed with status %d\n", static_cast<int>(a),
                 static_cast<int>(status));
    std::exit(1);
  }
  return us;
}

Samples Run(Agent& agent, int iterations) {
  Samples s;
  for (int i = 0; i < iterations; ++i) {
    const uint64_t key = 0x1000 + static_cast<uint64_t>(i);
    s.register_us.push_back(Timed(agent, ProutAction::kRegister, 0, key, 0));
    s.reserve_us.push_back(Timed(agent, ProutAction::kReserve, key, 0, 1));
    Timed(agent, ProutAction::kRelease, key, 0, 1);
    Timed(agent, ProutAction::kRegister, key, 0, 0);
  }
  return s;
}

void Print(const char* name, const Samples& s) {
  std::printf("%-6s REGISTER p50 %8.0f us  p99 %8.0f us | RESERVE p50 %8.0f us  p99 %8.0f us\n",
              name, Percentile(s.register_us, 0.5), Percentile(s.register_us, 0.99),
              Percentile(s.reserve_us, 0.5), Percentile(s.reserve_us, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
  char tmpl[] = "/tmp/vios-pr-bench-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);

  {
    Agent file("iqn.2026-11.dev.vios:a,t,0x1",
               std::make_unique<vios::reservation::FilePrStateStore>(dir + "/pr.json"),
               std::nullopt);
    std::string error;
    if (!file.pr->Init(&error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    Print("file", Run(file, iterations));
  }

  auto cp = vios::testing::ControlPlane::Start(true);
  const vios::kube::Config config = vios::kube::LoadKubeconfig(cp->KubeconfigPath());
  auto client = std::make_shared<vios::kube::Client>(config);
  client->Create(res::kNamespaces, "",
                 {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "bench"}}}});
  for (const char* name : {"vol1", "vol3"}) {
    client->Create(res::kVIOSVolumes, "bench",
                   {{"apiVersion", "vios.dev/v1alpha1"},
                    {"kind", "VIOSVolume"},
                    {"metadata", {{"name", name}}},
                    {"spec",
                     {{"cluster", "local"},
                      {"pool", "default"},
                      {"size", "128Mi"},
                      {"accessModes", {"ReadWriteMany"}},
                      {"extents", {{{"backend", "f"}, {"offset", 0}, {"length", 134217728}}}}}}});
  }
  auto start = [&](const std::string& port, const std::string& volume,
                   InProcessNotifier* notifier) {
    auto agent =
        std::make_unique<Agent>(port,
                                std::make_unique<vios::reservation::KubePrStateStore>(
                                    std::make_shared<vios::kube::Client>(config), "bench", volume),
                                ClusterOptions{.volume = volume, .notifier = notifier});
    std::string error;
    if (!agent->pr->Init(&error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      std::exit(1);
    }
    return agent;
  };
  {
    auto one = start("iqn.2026-11.dev.vios:a,t,0x1", "vol1", nullptr);
    Print("kube1", Run(*one, iterations));
  }
  {
    InProcessNotifier to_peers;
    InProcessNotifier unused_b;
    InProcessNotifier unused_c;
    auto a = start("iqn.2026-11.dev.vios:a,t,0x1", "vol3", &to_peers);
    auto b = start("iqn.2026-11.dev.vios:b,t,0x1", "vol3", &unused_b);
    auto c = start("iqn.2026-11.dev.vios:c,t,0x1", "vol3", &unused_c);
    to_peers.SetPeers({b->pr.get(), c->pr.get()});
    Print("kube3", Run(*a, iterations));
    const auto& counters = a->pr->counters();
    std::printf("kube3 notify: %llu notifications, mean %.1f us; store conflicts %llu\n",
                static_cast<unsigned long long>(counters.notify_count.load()),
                static_cast<double>(counters.notify_sum_ns.load()) / 1e3 /
                    static_cast<double>(std::max<uint64_t>(1, counters.notify_count.load())),
                static_cast<unsigned long long>(counters.store_conflicts.load()));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
