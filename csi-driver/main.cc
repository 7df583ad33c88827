// vios-csi: the CSI driver binary (DESIGN.md §2). --mode=controller serves Identity + Controller,
// --mode=node serves Identity + Node, on one unix socket the CSI sidecars (or csi-sanity) use.
//
//   vios-csi --mode=controller --endpoint unix:///csi/csi.sock --namespace vios-system
//            --cluster local [--kubeconfig FILE] [--metrics-address 127.0.0.1:9480]
//   vios-csi --mode=node --endpoint unix:///csi/csi.sock --node-id node-a
//            --agent-socket /run/vios/agent.sock [--state-dir /var/lib/vios-csi]
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/quantity.h"
#include "csi-driver/controller_service.h"
#include "csi-driver/identity_service.h"
#include "csi-driver/node_service.h"
#include "csi-driver/pool_metrics.h"
#include "csi-driver/rpc_metrics.h"
#include "csi-driver/zeroer.h"

namespace {

constexpr const char* kUsage =
    "usage: vios-csi --mode=controller|node --endpoint unix:///path/csi.sock\n"
    "  [--kubeconfig FILE] [--namespace NS] [--cluster NAME] [--node-id ID]\n"
    "  [--agent-socket PATH] [--state-dir DIR] [--metrics-address HOST:PORT]\n"
    "  [--default-volume-size QUANTITY] [--log-level debug|info|warning|error]\n";

// ParseFlags accepts --name=value and --name value; unknown flags are errors.
bool ParseFlags(int argc, char** argv, std::map<std::string, std::string>* flags) {
  static const char* kKnown[] = {
      "mode",         "endpoint",  "kubeconfig",      "namespace",           "cluster",  "node-id",
      "agent-socket", "state-dir", "metrics-address", "default-volume-size", "log-level"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      std::cerr << "unexpected argument '" << arg << "'\n" << kUsage;
      return false;
    }
    std::string name = arg.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "flag --" << name << " needs a value\n";
      return false;
    }
    bool known = false;
    for (const char* k : kKnown) known = known || name == k;
    if (!known) {
      std::cerr << "unknown flag --" << name << "\n" << kUsage;
      return false;
    }
    (*flags)[name] = value;
  }
  return true;
}

std::string Flag(const std::map<std::string, std::string>& flags, const std::string& name,
                 const std::string& fallback = "") {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vios;
  ::signal(SIGPIPE, SIG_IGN);
  // Block SIGTERM/SIGINT before any thread exists so that only the waiter below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::map<std::string, std::string> flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  const std::string mode = Flag(flags, "mode");
  const std::string endpoint = Flag(flags, "endpoint");
  log::SetComponent("vios-csi");
  if (auto level = Flag(flags, "log-level"); !level.empty()) {
    log::Level l;
    if (!log::ParseLevel(level, &l)) {
      std::cerr << "--log-level: unknown level '" << level << "'\n";
      return 2;
    }
    log::SetLevel(l);
  }
  if (mode != "controller" && mode != "node") {
    std::cerr << "--mode must be controller or node\n" << kUsage;
    return 2;
  }
  if (endpoint.rfind("unix://", 0) != 0) {
    std::cerr << "--endpoint must be unix:///path (got '" << endpoint << "')\n";
    return 2;
  }
  const std::string socket_path = endpoint.substr(std::string("unix://").size());
  if (mode == "node" && Flag(flags, "node-id").empty()) {
    std::cerr << "--mode=node needs --node-id\n";
    return 2;
  }

  std::unique_ptr<kube::Client> client;
  try {
    auto kubeconfig = Flag(flags, "kubeconfig");
    kube::Config config =
        kubeconfig.empty() ? kube::LoadDefaultConfig() : kube::LoadKubeconfig(kubeconfig);
    client = std::make_unique<kube::Client>(config);
  } catch (const std::exception& e) {
    std::cerr << "kubernetes client: " << e.what() << "\n";
    return 2;
  }
  const std::string ns = Flag(flags, "namespace", client->config().default_namespace);

  metrics::Registry registry;
  vios::csi::RpcMetrics rpc_metrics(registry);
  std::unique_ptr<metrics::Exposer> exposer;
  if (auto addr = Flag(flags, "metrics-address"); !addr.empty()) {
    auto colon = addr.rfind(':');
    std::string error;
    if (colon != std::string::npos) {
      exposer = metrics::Exposer::Start(addr.substr(0, colon),
                                        static_cast<uint16_t>(std::atoi(addr.c_str() + colon + 1)),
                                        &error);
    }
    if (!exposer) {
      std::cerr << "--metrics-address " << addr << ": " << (error.empty() ? "bad address" : error)
                << "\n";
      return 2;
    }
    exposer->Expose(registry);
  }

  vios::csi::BackendZeroer zeroer;
  std::unique_ptr<vios::csi::PoolMetrics> pool_metrics;
  std::unique_ptr<vios::csi::ControllerService> controller;
  std::unique_ptr<vios::csi::NodeService> node;
  std::function<grpc::Status()> ready;
  if (mode == "controller") {
    vios::csi::ControllerOptions options;
    options.ns = ns;
    options.default_cluster = Flag(flags, "cluster");
    if (auto size = Flag(flags, "default-volume-size"); !size.empty()) {
      auto bytes = util::ParseByteQuantity(size);
      if (!bytes || *bytes == 0) {
        std::cerr << "--default-volume-size: '" << size << "' is not a byte quantity\n";
        return 2;
      }
      options.default_size = *bytes;
    }
    if (!options.default_cluster.empty()) {
      pool_metrics =
          std::make_unique<vios::csi::PoolMetrics>(registry, *client, ns, options.default_cluster);
      pool_metrics->Start(std::chrono::seconds(30));
      vios::csi::PoolMetrics* pm = pool_metrics.get();
      options.pools_changed = [pm] { pm->Changed(); };
    }
    controller =
        std::make_unique<vios::csi::ControllerService>(*client, zeroer, options, rpc_metrics);
    kube::Client* c = client.get();
    ready = [c, ns]() -> grpc::Status {
      try {
        kube::ListOptions opts;
        opts.limit = 1;
        c->List(kube::resources::kVIOSClusters, ns, opts);
        return grpc::Status::OK;
      } catch (const std::exception& e) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string("API server: ") + e.what());
      }
    };
  } else {
    vios::csi::NodeOptions options;
    options.node_id = Flag(flags, "node-id");
    options.ns = ns;
    options.agent_socket = Flag(flags, "agent-socket", options.agent_socket);
    options.state_dir = Flag(flags, "state-dir", options.state_dir + "/" + options.node_id);
    node = std::make_unique<vios::csi::NodeService>(*client, options, rpc_metrics);
    vios::csi::NodeService* n = node.get();
    ready = [n] { return n->AgentReady(); };
  }
  vios::csi::IdentityService identity(mode == "controller", ready, rpc_metrics);

  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(socket_path).parent_path(), ec);
  std::filesystem::remove(socket_path, ec);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&identity);
  if (controller) builder.RegisterService(controller.get());
  if (node) builder.RegisterService(node.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "cannot listen on " << endpoint << "\n";
    return 1;
  }
  VIOS_LOG(kInfo, "vios-csi started")
      .Field("mode", mode)
      .Field("endpoint", endpoint)
      .Field("namespace", ns);

  // SIGTERM/SIGINT: stop accepting, let calls in flight finish (bounded), exit 0.
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    VIOS_LOG(kInfo, "vios-csi stopping").Field("signal", sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  });
  server->Wait();
  waiter.join();
  std::filesystem::remove(socket_path, ec);
  return 0;
}
