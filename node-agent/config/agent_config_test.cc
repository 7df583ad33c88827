#include "node-agent/config/agent_config.h"

#include <gtest/gtest.h>

namespace vios::agent {
namespace {

constexpr char kGood[] = R"(
node: node-a
listen:
  iscsi: ["127.0.0.1:3260"]
  api: /run/vios/agent.sock
  metrics: 127.0.0.1:9470
stateDir: /var/lib/vios
pools:
  - name: pool0
    extentSize: 16Mi
    backends:
      - name: file0
        file: {path: /var/lib/vios/pool0.img, size: 1Gi, create: true}
      - name: san0
        iscsi:
          portal: 127.0.0.1:3261
          iqn: iqn.2026-11.dev.vios:san
          lun: 1
          chap: {user: agent, secret: twelve-chars-ok}
volumes:
  - name: vol1
    pool: pool0
    extents:
      - {backend: file0, offset: 0, length: 64Mi}
      - {backend: san0, offset: 1Mi, length: 64Mi}
  - name: vol2
    pool: pool0
    size: 256Mi
ports:
  - target: iqn.2026-11.dev.vios:vol1:pod-a
    volume: vol1
    initiators: [iqn.1994-05.com.redhat:pod-a]
    chap: {user: pod-a, secret: secret-of-pod-a}
    mutualChap: {user: target, secret: secret-of-target}
fuse:
  - {volume: vol2, mountpoint: /run/vios/fuse}
)";

std::string ErrorOf(const std::string& yaml) {
  try {
    ParseAgentConfig(yaml, "agent.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(AgentConfigTest, ParsesACompleteConfiguration) {
  AgentConfig c = ParseAgentConfig(kGood);
  EXPECT_EQ(c.node_name, "node-a");
  ASSERT_EQ(c.pools.size(), 1u);
  EXPECT_EQ(c.pools[0].extent_size, 16ull << 20);
  ASSERT_EQ(c.pools[0].backends.size(), 2u);
  ASSERT_TRUE(c.pools[0].backends[0].file.has_value());
  EXPECT_EQ(c.pools[0].backends[0].file->size, 1ull << 30);
  ASSERT_TRUE(c.pools[0].backends[1].iscsi.has_value());
  EXPECT_EQ(c.pools[0].backends[1].iscsi->lun, 1u);
  EXPECT_EQ(c.pools[0].backends[1].iscsi->chap->user, "agent");
  ASSERT_EQ(c.volumes.size(), 2u);
  EXPECT_EQ(c.volumes[0].extents[1].offset, 1ull << 20);
  EXPECT_EQ(c.volumes[1].size, 256ull << 20);
  ASSERT_EQ(c.ports.size(), 1u);
  EXPECT_EQ(c.ports[0].mutual_chap->secret, "secret-of-target");
  EXPECT_EQ(c.fuse_exports[0].mountpoint, "/run/vios/fuse");
}

TEST(AgentConfigTest, RejectsGarbageWithLine) {
  EXPECT_NE(ErrorOf("pools: [\n  - {name: x\n").find("agent.yaml: not valid YAML at line"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(""), "agent.yaml: is empty");
  EXPECT_EQ(ErrorOf("- a\n- b\n"), "agent.yaml: the top level must be a mapping");
}

TEST(AgentConfigTest, NamesUnknownAndMisspeltFields) {
  EXPECT_EQ(ErrorOf("nodes: a\n"), "agent.yaml: nodes: unknown field");
  EXPECT_EQ(ErrorOf("pools:\n  - name: p\n    extentsize: 1Mi\n"),
            "agent.yaml: pools[0].extentsize: unknown field");
}

TEST(AgentConfigTest, NamesTheFieldOfABadValue) {
  EXPECT_EQ(ErrorOf("pools:\n  - name: p\n    extentSize: lots\n"),
            "agent.yaml: pools[0].extentSize: 'lots' is not a byte quantity (e.g. 4096, 64Mi, "
            "10Gi)");
  EXPECT_EQ(ErrorOf("pools:\n  - name: p\n    backends:\n      - name: b\n"),
            "agent.yaml: pools[0].backends[0].name=b: needs exactly one of file, iscsi, device");
}

TEST(AgentConfigTest, ChecksCrossReferences) {
  std::string bad_pool = R"(
pools: [{name: p, backends: [{name: f, file: {path: /tmp/x, size: 1Gi}}]}]
volumes: [{name: v, pool: nope, size: 1Gi}]
)";
  EXPECT_EQ(ErrorOf(bad_pool), "agent.yaml: volumes[0].pool: no pool named 'nope'");
  std::string past_end = R"(
pools: [{name: p, backends: [{name: f, file: {path: /tmp/x, size: 1Mi}}]}]
volumes: [{name: v, pool: p, extents: [{backend: f, offset: 0, length: 2Mi}]}]
)";
  EXPECT_EQ(ErrorOf(past_end),
            "agent.yaml: volumes[0].extents[0]: extends past the end of backend 'f'");
  std::string open_acl = R"(
pools: [{name: p, backends: [{name: f, file: {path: /tmp/x, size: 1Gi}}]}]
volumes: [{name: v, pool: p, size: 1Mi}]
ports: [{target: iqn.2026-11.dev.vios:v, volume: v}]
)";
  EXPECT_NE(ErrorOf(open_acl).find("ports[0].initiators: is empty"), std::string::npos);
}

TEST(AgentConfigTest, RejectsShortChapSecretsAndBadIqns) {
  std::string base = R"(
pools: [{name: p, backends: [{name: f, file: {path: /tmp/x, size: 1Gi}}]}]
volumes: [{name: v, pool: p, size: 1Mi}]
)";
  EXPECT_EQ(ErrorOf(base + "ports: [{target: iqn.2026-11.dev.vios:v, volume: v, allowAnyInitiator: "
                           "true, chap: {user: u, secret: short}}]\n"),
            "agent.yaml: ports[0].chap.secret: must be 12 to 255 characters long");
  EXPECT_EQ(
      ErrorOf(base + "ports: [{target: 'IQN.bad name', volume: v, allowAnyInitiator: true}]\n"),
      "agent.yaml: ports[0].target: 'IQN.bad name' is not a valid iSCSI name");
}

TEST(AgentConfigTest, ValidIscsiNames) {
  EXPECT_TRUE(IsValidIscsiName("iqn.2026-11.dev.vios:vol1:pod-a"));
  EXPECT_TRUE(IsValidIscsiName("iqn.1994-05.com.redhat:abc123"));
  EXPECT_TRUE(IsValidIscsiName("eui.02004567A425678D"));
  EXPECT_FALSE(IsValidIscsiName("iqn.26-11.dev.vios"));
  EXPECT_FALSE(IsValidIscsiName("target"));
}

TEST(AgentConfigTest, MissingFileIsNamed) {
  try {
    LoadAgentConfigFile("/nonexistent/agent.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/agent.yaml: cannot open the configuration file");
  }
}

}  // namespace
}  // namespace vios::agent

namespace vios::agent {
namespace {

TEST(AgentConfigTest, PathsSectionAndDurations) {
  EXPECT_EQ(ParseDuration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(ParseDuration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_EQ(ParseDuration("1m30s"), std::chrono::milliseconds(90000));
  EXPECT_EQ(ParseDuration("2h"), std::chrono::milliseconds(7200000));
  for (const char* bad : {"", "5", "s", "1.s", "-1s", "5 s", "5sec", "1d"}) {
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  }
  AgentConfig defaults = ParseAgentConfig("node: a\n");
  EXPECT_EQ(defaults.paths, PathsConfig{});
  EXPECT_EQ(defaults.paths.io_timeout, std::chrono::seconds(30));
  AgentConfig c = ParseAgentConfig(
      "paths:\n  probeInterval: 250ms\n  failureThreshold: 4\n  reroute: false\n"
      "  ioTimeout: 3s\n");
  EXPECT_EQ(c.paths.probe_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(c.paths.failure_threshold, 4u);
  EXPECT_FALSE(c.paths.reroute);
  EXPECT_EQ(c.paths.io_timeout, std::chrono::seconds(3));
  EXPECT_FALSE(c.paths.peer_data_integrity);
  EXPECT_TRUE(
      ParseAgentConfig("paths:\n  peerDataProtection: integrity\n").paths.peer_data_integrity);
  EXPECT_FALSE(
      ParseAgentConfig("paths:\n  peerDataProtection: encrypt\n").paths.peer_data_integrity);
  auto error_of = [](const std::string& yaml) {
    try {
      ParseAgentConfig(yaml);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("paths:\n  ioTimeout: soon\n").find("paths.ioTimeout"), std::string::npos);
  EXPECT_NE(error_of("paths:\n  failureThreshold: 0\n").find("paths.failureThreshold"),
            std::string::npos);
  EXPECT_NE(error_of("paths:\n  probeInterval: 1ms\n").find("at least"), std::string::npos);
  EXPECT_NE(error_of("paths:\n  timeout: 3s\n").find("paths.timeout"), std::string::npos);
  EXPECT_NE(error_of("paths:\n  peerDataProtection: none\n")
                .find("paths.peerDataProtection: 'none' is not encrypt or integrity"),
            std::string::npos)
      << error_of("paths:\n  peerDataProtection: none\n");
}

TEST(AgentConfigTest, ClusterPeerDataPort) {
  const std::string base = "node: n1\ncluster:\n  name: c\n  namespace: ns\n";
  EXPECT_EQ(ParseAgentConfig(base).cluster->peer_data_port, 0);
  EXPECT_EQ(ParseAgentConfig(base + "  peerDataPort: 7471\n").cluster->peer_data_port, 7471);
  try {
    ParseAgentConfig(base + "  peerDataPort: 70000\n");
    ADD_FAILURE() << "accepted port 70000";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cluster.peerDataPort"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vios::agent
