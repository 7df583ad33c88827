// vios-operator-bench: how vios-operator scales (issue #4): the time for N agents to join, the
// operator's reconcile latency with N members and M volumes, and its memory, against a real
// kube-apiserver + etcd (common/testing ControlPlane) with simulated agents (the registration
// protocol of operator/simulated_agent.h, the same as vios-agent's).
//
//   VIOS_SOURCE_DIR=. vios-operator-bench --operator=build/operator/vios-operator
//       [--members=100] [--volumes=1000] [--spec-changes=20]
//
// Prints one table (markdown) of the figures; bench/operator/README.md has a recorded run.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/testing/control_plane.h"
#include "operator/simulated_agent.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace res = vios::kube::resources;

constexpr char kNs[] = "bench";
constexpr char kCluster[] = "bench";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ParallelFor runs fn(i) for i in [0, n) on `threads` threads.
template <typename Fn>
void ParallelFor(int n, int threads, Fn fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

// WaitFor polls pred every 20 ms until true or timeout; returns the elapsed time or -1.
template <typename Pred>
double WaitFor(Pred pred, double timeout_seconds) {
  auto start = Clock::now();
  while (Seconds(Clock::now() - start) < timeout_seconds) {
    try {
      if (pred()) return Seconds(Clock::now() - start);
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// ProcessMemory returns VmHWM and VmRSS of pid in KiB.
std::pair<long, long> ProcessMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long hwm = 0, rss = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stol(line.substr(6));
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stol(line.substr(6));
  }
  return {hwm, rss};
}

json Cluster(int image_tag) {
  return {
      {"apiVersion", "vios.dev/v1alpha1"},
      {"kind", "VIOSCluster"},
      {"metadata", {{"name", kCluster}, {"namespace", kNs}}},
      {"spec",
       {{"agents", {{"image", "vios/agent:bench-" + std::to_string(image_tag)}}},
        {"pools",
         {{{"name", "default"},
           {"extentSize", "64Mi"},
           {"backends",
            {{{"name", "file0"}, {"file", {{"path", "/vios/pool0.img"}, {"size", "2Ti"}}}}}}}}}}}};
}

json Volume(int i) {
  const uint64_t gib = 1ull << 30;
  return {{"apiVersion", "vios.dev/v1alpha1"},
          {"kind", "VIOSVolume"},
          {"metadata", {{"name", "pvc-" + std::to_string(i)}, {"namespace", kNs}}},
          {"spec",
           {{"cluster", kCluster},
            {"pool", "default"},
            {"size", "1Gi"},
            {"accessModes", {"ReadWriteOnce"}},
            {"extents", {{{"backend", "file0"}, {"offset", i * gib}, {"length", gib}}}}}}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string operator_binary;
  int members = 100, volumes = 1000, spec_changes = 20;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      return arg.rfind(flag, 0) == 0 ? arg.c_str() + std::strlen(flag) : nullptr;
    };
    if (auto v = value("--operator="))
      operator_binary = v;
    else if (auto m = value("--members="))
      members = std::atoi(m);
    else if (auto n = value("--volumes="))
      volumes = std::atoi(n);
    else if (auto s = value("--spec-changes="))
      spec_changes = std::atoi(s);
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (operator_binary.empty() || members < 1 || volumes < 0 || spec_changes < 1) {
    std::fprintf(stderr,
                 "usage: vios-operator-bench --operator=PATH [--members=N] [--volumes=M] "
                 "[--spec-changes=K]\n");
    return 2;
  }
  auto cp = vios::testing::ControlPlane::Start(/*install_crds=*/true);
  vios::kube::Client client(vios::kube::LoadKubeconfig(cp->KubeconfigPath()));
  client.Create(res::kNamespaces, "", {{"metadata", {{"name", kNs}}}});
  client.Create(res::kVIOSClusters, kNs, Cluster(0));

  const std::string log = cp->Dir() + "/operator.log";
  pid_t pid = fork();
  if (pid == 0) {
    if (!std::freopen(log.c_str(), "w", stderr)) _exit(126);
    execl(operator_binary.c_str(), operator_binary.c_str(),
          ("--kubeconfig=" + cp->KubeconfigPath()).c_str(), "--namespace=bench", "--identity=bench",
          "--metrics-address=", nullptr);
    _exit(127);
  }
  auto status = [&] {
    return client.Get(res::kVIOSClusters, kNs, kCluster).value("status", json::object());
  };
  WaitFor([&] { return status().contains("observedGeneration"); }, 60);

  // 1. N agents join at once: from the first registration to membersUp == N.
  std::vector<std::unique_ptr<vios::op::testing::SimulatedAgent>> agents(members);
  auto join_start = Clock::now();
  ParallelFor(members, 8, [&](int i) {
    agents[i] = std::make_unique<vios::op::testing::SimulatedAgent>(
        client, vios::op::testing::AgentOptions{
                    .ns = kNs,
                    .name = "node-" + std::to_string(i),
                    .cluster = kCluster,
                    .node = "node-" + std::to_string(i),
                    .peer_address = "127.77.3." + std::to_string(i % 250 + 1) + ":7470",
                    .lease_duration_seconds = 15,
                    .renew_every = std::chrono::milliseconds(5000),
                    .paths = json::array(
                        {{{"pool", "default"}, {"backend", "file0"}, {"state", "Healthy"}}})});
    agents[i]->Register();
  });
  double registered = Seconds(Clock::now() - join_start);
  double joined = WaitFor([&] { return status().value("membersUp", 0) == members; }, 300);
  joined = joined < 0 ? -1 : registered + joined;

  // 2. M volumes: created in parallel, then until the pool status counts every extent.
  auto volume_start = Clock::now();
  ParallelFor(volumes, 8, [&](int i) { client.Create(res::kVIOSVolumes, kNs, Volume(i)); });
  double created = Seconds(Clock::now() - volume_start);
  const std::string expected_allocated = std::to_string(volumes) + "Gi";
  double counted = WaitFor(
      [&] {
        json s = status();
        return s.contains("pools") && s["pools"][0].value("allocated", "") == expected_allocated;
      },
      300);

  // 3. Spec changes with N members and M volumes present: change -> observedGeneration.
  std::vector<double> latencies;
  for (int k = 1; k <= spec_changes; ++k) {
    json current = client.Get(res::kVIOSClusters, kNs, kCluster);
    current["spec"]["agents"]["image"] = "vios/agent:bench-" + std::to_string(k);
    auto start = Clock::now();
    json updated = client.Update(res::kVIOSClusters, current);
    int64_t generation = updated["metadata"].value("generation", 0);
    double t = WaitFor([&] { return status().value("observedGeneration", 0) >= generation; }, 60);
    if (t < 0) {
      std::fprintf(stderr, "spec change %d not observed in 60 s\n", k);
      break;
    }
    latencies.push_back(Seconds(Clock::now() - start));
  }
  std::sort(latencies.begin(), latencies.end());
  auto [hwm, rss] = ProcessMemory(pid);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);

  auto pct = [&](double p) {
    if (latencies.empty()) return -1.0;
    size_t idx = std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()));
    return latencies[idx] * 1000;
  };
  std::printf("| figure | value |\n|---|---|\n");
  std::printf("| members / volumes | %d / %d |\n", members, volumes);
  std::printf("| %d agents registered (8 threads) | %.2f s |\n", members, registered);
  std::printf("| %d agents joined (registration start -> membersUp=%d) | %.2f s |\n", members,
              members, joined);
  std::printf("| %d VIOSVolumes created (8 threads) | %.2f s |\n", volumes, created);
  std::printf("| ... counted in VIOSCluster.status.pools after creation | %.2f s |\n", counted);
  std::printf("| spec change -> observedGeneration, p50 | %.0f ms |\n", pct(0.5));
  std::printf("| spec change -> observedGeneration, max (%zu changes) | %.0f ms |\n",
              latencies.size(), pct(1.0));
  std::printf("| operator peak RSS (VmHWM) | %.1f MiB |\n", static_cast<double>(hwm) / 1024);
  std::printf("| operator RSS at the end | %.1f MiB |\n", static_cast<double>(rss) / 1024);
  agents.clear();
  return joined < 0 || counted < 0 || latencies.size() != static_cast<size_t>(spec_changes) ? 1 : 0;
}
