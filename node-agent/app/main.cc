// vios-agent: the VIOS of a node. Standalone it serves what its configuration file declares; with
// --cluster it joins a VIOSCluster and builds its pools from the cluster's spec
// (node-agent/README.md).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/log/log.h"
#include "node-agent/app/agent.h"
#include "node-agent/app/agent_flags.h"
#include "node-agent/config/agent_config.h"

namespace {

int Serve(const vios::agent::AgentConfig& config) {
  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<vios::agent::Agent> agent;
  try {
    agent = vios::agent::Agent::Create(config);
    agent->Start();
  } catch (const std::exception& e) {
    VIOS_LOG(kError, "agent failed to start").Field("error", e.what());
    std::fprintf(stderr, "vios-agent: %s\n", e.what());
    if (agent) agent->Stop();
    return 1;
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  VIOS_LOG(kInfo, "stopping").Field("signal", strsignal(signal_number));
  agent->Stop();
  VIOS_LOG(kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using vios::agent::kAgentUsage;
  vios::log::SetComponent("vios-agent");
  vios::agent::AgentFlags flags;
  try {
    flags = vios::agent::ParseAgentFlags(std::vector<std::string>(argv + 1, argv + argc),
                                         [](const char* name) {
                                           const char* value = std::getenv(name);
                                           return std::string(value ? value : "");
                                         });
  } catch (const vios::agent::FlagError& e) {
    std::fprintf(stderr, "vios-agent: %s\n%s", e.what(), kAgentUsage);
    return 2;
  }
  if (flags.help) {
    std::fputs(kAgentUsage, stdout);
    return 0;
  }
  if (!flags.log_level.empty()) {
    vios::log::Level level;
    if (!vios::log::ParseLevel(flags.log_level, &level)) {
      std::fprintf(stderr, "vios-agent: unknown log level '%s'\n%s", flags.log_level.c_str(),
                   kAgentUsage);
      return 2;
    }
    vios::log::SetLevel(level);
  }
  vios::agent::AgentConfig config;
  try {
    config = vios::agent::BuildAgentConfig(flags, vios::agent::FirstHostAddress);
  } catch (const std::exception& e) {  // ConfigError names the field, FlagError the flag.
    VIOS_LOG(kError, "invalid configuration").Field("error", e.what());
    std::fprintf(stderr, "vios-agent: %s\n", e.what());
    return 2;
  }
  if (flags.check_only) {
    std::printf("%s: ok\n", flags.config_path.c_str());
    return 0;
  }
  return Serve(config);
}
