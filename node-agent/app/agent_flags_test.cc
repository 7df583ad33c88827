#include "node-agent/app/agent_flags.h"

#include <map>

#include <gtest/gtest.h>

namespace vios::agent {
namespace {

AgentFlags Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return ParseAgentFlags(args, [env](const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  });
}

std::string NoAddress() { return ""; }

TEST(AgentFlagsTest, DaemonSetFlagsMakeAClusterConfig) {
  // Exactly what vios-operator's node DaemonSet passes (operator/node_daemonset.cc).
  AgentFlags flags = Parse({"--cluster=prod", "--namespace=vios-system", "--node-name=node-a",
                            "--state-dir=/var/lib/vios", "--socket=/run/vios/agent.sock",
                            "--peer-port=7470", "--metrics-address=0.0.0.0:9470"},
                           {{"VIOS_HOST_IP", "10.1.2.3"}});
  AgentConfig config = BuildAgentConfig(flags, NoAddress);
  ASSERT_TRUE(config.cluster.has_value());
  EXPECT_EQ(config.cluster->name, "prod");
  EXPECT_EQ(config.cluster->ns, "vios-system");
  EXPECT_EQ(config.node_name, "node-a");
  EXPECT_EQ(config.cluster->peer_address, "10.1.2.3:7470");
  EXPECT_EQ(config.cluster->peer_listen, "10.1.2.3:7470");
  EXPECT_EQ(config.iscsi_listen, std::vector<std::string>{"10.1.2.3:3260"});
  EXPECT_EQ(config.state_dir, "/var/lib/vios");
  EXPECT_EQ(config.api_socket, "/run/vios/agent.sock");
  EXPECT_EQ(config.metrics_listen, "0.0.0.0:9470");
  EXPECT_TRUE(config.pools.empty());
}

TEST(AgentFlagsTest, SeparateValuesAndDefaults) {
  AgentFlags flags = Parse({"--cluster", "c", "--namespace", "ns"}, {{"VIOS_NODE_NAME", "n1"}});
  AgentConfig config = BuildAgentConfig(flags, [] { return std::string("127.77.1.2"); });
  EXPECT_EQ(config.node_name, "n1");
  EXPECT_EQ(config.cluster->peer_address, "127.77.1.2:7470");
  EXPECT_EQ(config.cluster->peer_data_port, 0);  // the system picks it; Health reports it
  EXPECT_EQ(config.iscsi_listen, std::vector<std::string>{"127.77.1.2:3260"});
}

TEST(AgentFlagsTest, PeerDataPort) {
  AgentFlags flags = Parse({"--cluster=c", "--namespace=ns", "--node-name=n",
                            "--advertise-address=127.0.0.9", "--peer-data-port=7471"});
  AgentConfig config = BuildAgentConfig(flags, NoAddress);
  EXPECT_EQ(config.cluster->peer_data_port, 7471);
}

TEST(AgentFlagsTest, ExplicitPortalsWin) {
  AgentFlags flags =
      Parse({"--cluster=c", "--namespace=ns", "--node-name=n", "--advertise-address=127.0.0.9",
             "--iscsi-address=127.0.0.9:3300", "--iscsi-address=127.0.0.9:3301"});
  AgentConfig config = BuildAgentConfig(flags, NoAddress);
  EXPECT_EQ(config.iscsi_listen.size(), 2u);
  EXPECT_EQ(config.iscsi_listen[1], "127.0.0.9:3301");
}

TEST(AgentFlagsTest, MistakesNameTheFlag) {
  auto message = [](std::vector<std::string> args) {
    try {
      AgentFlags flags = Parse(args);
      BuildAgentConfig(flags, NoAddress);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({"--peer-data-port=0", "--cluster=c", "--namespace=n"})
                .find("--peer-data-port: '0' is not a port number"),
            std::string::npos);
  EXPECT_NE(message({"--peer-port=99999", "--cluster=c", "--namespace=n"}).find("--peer-port"),
            std::string::npos);
  EXPECT_NE(message({"--cluster=c"}).find("--namespace"), std::string::npos);
  EXPECT_NE(message({"--frobnicate=1"}).find("--frobnicate"), std::string::npos);
  EXPECT_NE(message({}).find("--config"), std::string::npos);
  EXPECT_NE(message({"--cluster=c", "--namespace=n", "--node-name=x"}).find("--advertise-address"),
            std::string::npos);
  EXPECT_NE(message({"--config"}).find("needs a value"), std::string::npos);
}

}  // namespace
}  // namespace vios::agent
