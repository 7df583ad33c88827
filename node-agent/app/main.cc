// vios-agent: the VIOS of a node. In standalone mode it serves what its configuration file
// declares (node-agent/README.md).
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "common/log/log.h"
#include "node-agent/app/agent.h"
#include "node-agent/config/agent_config.h"

namespace {

constexpr char kUsage[] =
    "usage: vios-agent --config FILE [--log-level debug|info|warning|error]\n"
    "       vios-agent --check-config FILE\n";

int Run(const std::string& config_path, bool check_only) {
  vios::agent::AgentConfig config;
  try {
    config = vios::agent::LoadAgentConfigFile(config_path);
  } catch (const vios::agent::ConfigError& e) {
    VIOS_LOG(kError, "invalid configuration").Field("error", e.what());
    std::fprintf(stderr, "vios-agent: %s\n", e.what());
    return 2;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

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
  vios::log::SetComponent("vios-agent");
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vios-agent: %s needs a value\n%s", arg.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--config") {
      config_path = value();
    } else if (arg == "--check-config") {
      config_path = value();
      check_only = true;
    } else if (arg == "--log-level") {
      vios::log::Level level;
      std::string text = value();
      if (!vios::log::ParseLevel(text, &level)) {
        std::fprintf(stderr, "vios-agent: unknown log level '%s'\n%s", text.c_str(), kUsage);
        return 2;
      }
      vios::log::SetLevel(level);
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "vios-agent: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  return Run(config_path, check_only);
}
