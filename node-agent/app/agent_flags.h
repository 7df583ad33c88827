// Command-line flags of vios-agent, turned into an AgentConfig. The operator's node DaemonSet runs
// the agent with flags only (cluster mode: pools come from the VIOSCluster spec); a standalone
// agent reads its whole configuration from --config; flags override what the file says.
//
//   AgentFlags flags = ParseAgentFlags(args, env);   // throws FlagError naming the flag
//   if (flags.help) ...
//   AgentConfig config = BuildAgentConfig(flags);    // throws ConfigError / FlagError
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "node-agent/config/agent_config.h"

namespace vios::agent {

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint16_t kDefaultPeerPort = 7470;
inline constexpr uint16_t kDefaultIscsiPort = 3260;

struct AgentFlags {
  bool help = false;
  bool check_only = false;  // --check-config: validate and exit
  std::string config_path;
  std::string log_level;
  std::string cluster;
  std::string ns;
  std::string node_name;
  std::string kubeconfig;
  std::string state_dir;
  std::string socket;
  std::vector<std::string> iscsi_addresses;
  std::string advertise_address;
  std::optional<uint16_t> peer_port;
  std::optional<uint16_t> peer_data_port;
  std::optional<std::string> metrics_address;  // "" disables
};

// ParseAgentFlags accepts "--flag=value" and "--flag value". env looks up environment variables
// (VIOS_NODE_NAME, VIOS_HOST_IP) for defaults.
AgentFlags ParseAgentFlags(const std::vector<std::string>& args,
                           const std::function<std::string(const char*)>& env);

// BuildAgentConfig loads --config (if any) and applies the flags over it. first_host_address
// supplies the default advertise address in cluster mode (the first non-loopback IPv4 address).
AgentConfig BuildAgentConfig(const AgentFlags& flags,
                             const std::function<std::string()>& first_host_address);

// FirstHostAddress returns the first IPv4 address of an interface that is up and not a loopback
// device ("" if none).
std::string FirstHostAddress();

extern const char kAgentUsage[];

}  // namespace vios::agent
