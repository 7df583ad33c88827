// kube_leader_helper: one leader-election candidate as its own process, for the integration
// test that kills a leader with SIGKILL. Prints, one line each, flushed:
//   LEADING <identity> <unix ms>      when it becomes leader
//   HOLD <identity> <unix ms>         every 50 ms while IsLeader()
//   STOPPED <identity> <unix ms>      when leadership ends
// Usage: kube_leader_helper KUBECONFIG NAMESPACE LEASE IDENTITY LEASE_MS RENEW_MS RETRY_MS
// SIGTERM stops it gracefully (the lease is released).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/kube/leader_election.h"

namespace {

std::atomic<bool> g_term{false};

void OnTerm(int) { g_term = true; }

long long UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Say(const char* what, const std::string& id) {
  std::printf("%s %s %lld\n", what, id.c_str(), UnixMs());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s KUBECONFIG NS LEASE ID LEASE_MS RENEW_MS RETRY_MS\n", argv[0]);
    return 2;
  }
  using std::chrono::milliseconds;
  std::signal(SIGTERM, OnTerm);
  vios::kube::Client client(vios::kube::LoadKubeconfig(argv[1]));
  std::string id = argv[4];
  vios::kube::LeaderElectionConfig config;
  config.lease_namespace = argv[2];
  config.lease_name = argv[3];
  config.identity = id;
  config.lease_duration = milliseconds(std::atoll(argv[5]));
  config.renew_deadline = milliseconds(std::atoll(argv[6]));
  config.retry_period = milliseconds(std::atoll(argv[7]));
  config.callbacks.on_started_leading = [&] { Say("LEADING", id); };
  config.callbacks.on_stopped_leading = [&] { Say("STOPPED", id); };
  vios::kube::LeaderElector elector(client, config);
  std::atomic<bool> done{false};
  std::thread runner([&] {
    elector.Run();
    done = true;
  });
  while (!done.load()) {
    if (g_term.load()) elector.Stop();
    if (elector.IsLeader()) Say("HOLD", id);
    std::this_thread::sleep_for(milliseconds(50));
  }
  runner.join();
  return 0;
}
