#include "node-agent/app/agent_flags.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <unistd.h>

#include <charconv>

namespace vios::agent {

const char kAgentUsage[] =
    "usage: vios-agent [--config=FILE] [flags]        serve (standalone, or in a cluster)\n"
    "       vios-agent --check-config=FILE             validate a configuration file\n"
    "\n"
    "  --config=FILE             YAML configuration (node-agent/README.md); flags override it\n"
    "  --cluster=NAME            join this VIOSCluster; pools come from its spec\n"
    "  --namespace=NS            the VIOSCluster's namespace (with --cluster)\n"
    "  --node-name=NAME          member name (default $VIOS_NODE_NAME, else the host name)\n"
    "  --kubeconfig=PATH         default $KUBECONFIG, in-cluster, ~/.kube/config\n"
    "  --state-dir=DIR           local state: cluster copy, ports, reservations, credentials\n"
    "  --socket=PATH             local gRPC API for the CSI node plugin (unix socket)\n"
    "  --iscsi-address=HOST:PORT iSCSI portal, repeatable (default 127.0.0.1:3260; in a cluster\n"
    "                            <advertise-address>:3260)\n"
    "  --advertise-address=IP    address peers reach this agent on (default $VIOS_HOST_IP, else\n"
    "                            the first non-loopback IPv4 address)\n"
    "  --peer-port=PORT          peer channel port (default 7470)\n"
    "  --peer-data-port=PORT     peer data channel port for rerouted I/O (default: chosen by the\n"
    "                            system and reported to peers)\n"
    "  --metrics-address=H:P     Prometheus /metrics; empty disables\n"
    "  --log-level=LEVEL         debug, info, warning, error\n";

namespace {

uint16_t ParsePort(const std::string& flag, const std::string& text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    throw FlagError("--" + flag + ": '" + text + "' is not a port number (1-65535)");
  }
  return static_cast<uint16_t>(value);
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

}  // namespace

AgentFlags ParseAgentFlags(const std::vector<std::string>& args,
                           const std::function<std::string(const char*)>& env) {
  AgentFlags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.starts_with("--")) throw FlagError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) throw FlagError("--" + name + " needs a value");
      return args[++i];
    };
    if (name == "config") {
      flags.config_path = value();
    } else if (name == "check-config") {
      flags.config_path = value();
      flags.check_only = true;
    } else if (name == "log-level") {
      flags.log_level = value();
    } else if (name == "cluster") {
      flags.cluster = value();
    } else if (name == "namespace") {
      flags.ns = value();
    } else if (name == "node-name") {
      flags.node_name = value();
    } else if (name == "kubeconfig") {
      flags.kubeconfig = value();
    } else if (name == "state-dir") {
      flags.state_dir = value();
    } else if (name == "socket") {
      flags.socket = value();
    } else if (name == "iscsi-address") {
      flags.iscsi_addresses.push_back(value());
    } else if (name == "advertise-address") {
      flags.advertise_address = value();
    } else if (name == "peer-port") {
      flags.peer_port = ParsePort(name, value());
    } else if (name == "peer-data-port") {
      flags.peer_data_port = ParsePort(name, value());
    } else if (name == "metrics-address") {
      flags.metrics_address = value();
    } else {
      throw FlagError("unknown flag --" + name);
    }
  }
  if (flags.help) return flags;
  if (flags.cluster.empty() != flags.ns.empty()) {
    throw FlagError("--cluster and --namespace go together");
  }
  if (flags.node_name.empty()) flags.node_name = env("VIOS_NODE_NAME");
  if (flags.advertise_address.empty()) flags.advertise_address = env("VIOS_HOST_IP");
  if (flags.config_path.empty() && flags.cluster.empty()) {
    throw FlagError("either --config (standalone) or --cluster and --namespace is required");
  }
  return flags;
}

AgentConfig BuildAgentConfig(const AgentFlags& flags,
                             const std::function<std::string()>& first_host_address) {
  AgentConfig config;
  bool iscsi_from_file = false;
  if (!flags.config_path.empty()) {
    config = LoadAgentConfigFile(flags.config_path);
    iscsi_from_file = true;
  }
  if (!flags.node_name.empty()) config.node_name = flags.node_name;
  if (!flags.state_dir.empty()) config.state_dir = flags.state_dir;
  if (!flags.socket.empty()) config.api_socket = flags.socket;
  if (flags.metrics_address) config.metrics_listen = *flags.metrics_address;
  if (!flags.cluster.empty()) {
    if (config.node_name.empty()) config.node_name = HostName();
    if (config.node_name.empty()) throw FlagError("--node-name is required (no host name)");
    ClusterMembershipConfig m = config.cluster.value_or(ClusterMembershipConfig{});
    m.name = flags.cluster;
    m.ns = flags.ns;
    if (!flags.kubeconfig.empty()) m.kubeconfig = flags.kubeconfig;
    // The advertised host: the flag (or $VIOS_HOST_IP), else the file's peerAddress, else the
    // first non-loopback address; the port: the flag, else the file's, else 7470.
    const size_t colon = m.peer_address.rfind(':');
    std::string host = flags.advertise_address;
    if (host.empty() && colon != std::string::npos) host = m.peer_address.substr(0, colon);
    if (host.empty()) host = first_host_address();
    if (host.empty()) {
      throw FlagError("--advertise-address is required (no non-loopback IPv4 address found)");
    }
    uint16_t peer_port = kDefaultPeerPort;
    if (flags.peer_port) {
      peer_port = *flags.peer_port;
    } else if (colon != std::string::npos) {
      peer_port = ParsePort("cluster.peerAddress", m.peer_address.substr(colon + 1));
    }
    m.peer_address = host + ":" + std::to_string(peer_port);
    if (m.peer_listen.empty()) m.peer_listen = m.peer_address;
    if (flags.peer_data_port) m.peer_data_port = *flags.peer_data_port;
    if (!iscsi_from_file) config.iscsi_listen = {host + ":" + std::to_string(kDefaultIscsiPort)};
    config.cluster = std::move(m);
  } else if (!flags.kubeconfig.empty() && config.cluster) {
    config.cluster->kubeconfig = flags.kubeconfig;
  }
  if (!flags.iscsi_addresses.empty()) config.iscsi_listen = flags.iscsi_addresses;
  ValidateAgentConfig(config);
  return config;
}

std::string FirstHostAddress() {
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (struct ifaddrs* it = list; it != nullptr && found.empty(); it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    if ((it->ifa_flags & IFF_UP) == 0 || (it->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* sin = reinterpret_cast<const struct sockaddr_in*>(it->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) != nullptr) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

}  // namespace vios::agent
