// vios-operator: reconciles VIOSClusters and VIOSMembers (DESIGN.md §2). See operator/README.md.
//
//   vios-operator --kubeconfig=$HOME/.kube/config --namespace=vios-system --leader-elect=true
//
// SIGTERM / SIGINT: stop reconciling, release the leader Lease, exit 0. Lost leadership: exit 1
// (the pod restarts and campaigns again as a standby).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "common/kube/config.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "operator/manager.h"

namespace {

using vios::op::ManagerOptions;

constexpr const char* kUsage = R"(usage: vios-operator [flags]
  --kubeconfig=PATH        kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --namespace=NS           namespace to watch (default: all namespaces)
  --leader-elect=BOOL      campaign for a Lease before reconciling (default true)
  --lease-name=NAME        leader election Lease name (default vios-operator)
  --lease-namespace=NS     its namespace (default: --namespace, $POD_NAMESPACE, or default)
  --lease-duration=DUR     leader Lease duration (default 15s; renew deadline 2/3, retry 1/5)
  --identity=NAME          this replica's identity (default: $POD_NAME or hostname-pid)
  --member-grace=DUR       extra time after a member Lease expires before Down (default 5s)
  --metrics-address=H:P    serve /metrics there; empty disables (default 127.0.0.1:8080)
  --agent-image=IMAGE      default image of the node DaemonSet (agent + CSI node plugin)
  --registrar-image=IMAGE  node-driver-registrar image
  --agent-service-account=NAME  service account of the agent pods (default vios-agent)
  --workers=N              reconcile workers per controller (default 2)
  --log-level=LEVEL        debug, info, warning, error (default info)
)";

// ParseDuration accepts "500ms", "15s", "2m", "1h" (one unit).
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  const int64_t n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  return std::nullopt;
}

std::optional<bool> ParseBool(const std::string& text) {
  if (text == "true" || text == "1" || text.empty()) return true;
  if (text == "false" || text == "0") return false;
  return std::nullopt;
}

[[noreturn]] void Usage(const std::string& problem) {
  std::cerr << "vios-operator: " << problem << "\n" << kUsage;
  std::exit(2);
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

int main(int argc, char** argv) {
  vios::log::SetComponent("vios-operator");
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg.rfind("--", 0) != 0) Usage("unexpected argument " + arg);
    auto eq = arg.find('=');
    std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (eq == std::string::npos && name != "leader-elect" && i + 1 < argc) value = argv[++i];
    flags[name] = value;
  }
  auto flag = [&](const std::string& name, const std::string& fallback) {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  };
  static const char* kKnown[] = {"kubeconfig",  "namespace",       "leader-elect",
                                 "lease-name",  "lease-namespace", "lease-duration",
                                 "identity",    "member-grace",    "metrics-address",
                                 "agent-image", "registrar-image", "agent-service-account",
                                 "workers",     "log-level"};
  for (const auto& [name, value] : flags) {
    if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown)) {
      Usage("unknown flag --" + name);
    }
  }

  vios::log::Level level;
  if (!vios::log::ParseLevel(flag("log-level", "info"), &level)) Usage("bad --log-level");
  vios::log::SetLevel(level);

  ManagerOptions options;
  options.watch_namespace = flag("namespace", "");
  auto leader_elect = ParseBool(flag("leader-elect", "true"));
  if (!leader_elect) Usage("bad --leader-elect");
  options.leader_elect = *leader_elect;
  options.lease_name = flag("lease-name", "vios-operator");
  std::string lease_ns = flag("lease-namespace", options.watch_namespace);
  if (lease_ns.empty()) lease_ns = Env("POD_NAMESPACE");
  if (lease_ns.empty()) lease_ns = "default";
  options.lease_namespace = lease_ns;
  auto lease_duration = ParseDuration(flag("lease-duration", "15s"));
  if (!lease_duration || *lease_duration < std::chrono::milliseconds(1500)) {
    Usage("bad --lease-duration (at least 1500ms)");
  }
  options.lease_duration = *lease_duration;
  auto grace = ParseDuration(flag("member-grace", "5s"));
  if (!grace) Usage("bad --member-grace");
  options.member.grace = *grace;
  std::string identity = flag("identity", Env("POD_NAME"));
  if (identity.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    identity = std::string(host) + "-" + std::to_string(getpid());
  }
  options.identity = identity;
  if (flags.count("agent-image")) options.cluster.daemonset.default_image = flags["agent-image"];
  if (flags.count("registrar-image")) {
    options.cluster.daemonset.registrar_image = flags["registrar-image"];
  }
  if (flags.count("agent-service-account")) {
    options.cluster.daemonset.service_account = flags["agent-service-account"];
  }
  try {
    options.workers = std::stoi(flag("workers", "2"));
  } catch (const std::exception&) {
    Usage("bad --workers");
  }
  if (options.workers < 1 || options.workers > 64) Usage("bad --workers (1..64)");

  // Block the termination signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    vios::kube::Config config = flags.count("kubeconfig")
                                    ? vios::kube::LoadKubeconfig(flags["kubeconfig"])
                                    : vios::kube::LoadDefaultConfig();
    vios::kube::Client client(config);
    vios::metrics::Registry registry;
    std::unique_ptr<vios::metrics::Exposer> exposer;
    const std::string metrics_address = flag("metrics-address", "127.0.0.1:8080");
    if (!metrics_address.empty()) {
      auto colon = metrics_address.rfind(':');
      if (colon == std::string::npos) Usage("bad --metrics-address (host:port)");
      std::string error;
      exposer = vios::metrics::Exposer::Start(
          metrics_address.substr(0, colon),
          static_cast<uint16_t>(std::stoi(metrics_address.substr(colon + 1))), &error);
      if (!exposer) {
        VIOS_LOG(kError, "cannot serve metrics")
            .Field("address", metrics_address)
            .Field("error", error);
        return 1;
      }
      exposer->Expose(registry);
    }
    vios::op::Manager manager(client, options, registry);
    VIOS_LOG(kInfo, "starting")
        .Field("identity", identity)
        .Field("namespace", options.watch_namespace.empty() ? "*" : options.watch_namespace)
        .Field("leader_elect", options.leader_elect)
        .Field("lease", options.lease_namespace + "/" + options.lease_name)
        .Field("metrics_port", exposer ? static_cast<int64_t>(exposer->port()) : int64_t{0});
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      VIOS_LOG(kInfo, "signal received, stopping").Field("signal", sig);
      manager.Stop();
    });
    bool clean = manager.Run();
    if (!clean) {
      VIOS_LOG(kError, "exiting after losing leadership");
      std::_Exit(1);  // the signal thread is parked in sigwait; do not wait for it
    }
    // Stop() was called by the signal thread (or Run ended early): release happened in Run.
    waiter.join();
    VIOS_LOG(kInfo, "stopped");
    return 0;
  } catch (const std::exception& e) {
    VIOS_LOG(kError, "fatal").Field("error", e.what());
    return 1;
  }
}
