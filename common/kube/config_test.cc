// Unit tests for kubeconfig and in-cluster configuration loading.
#include "common/kube/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/kube/errors.h"

namespace vios::kube {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kube-config-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const std::string& text) {
    fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }

  // ExpectConfigError runs f and checks it throws ConfigError mentioning every fragment.
  template <typename F>
  void ExpectConfigError(F f, const std::vector<std::string>& fragments) {
    try {
      f();
      ADD_FAILURE() << "no ConfigError thrown";
    } catch (const ConfigError& e) {
      for (const auto& fragment : fragments) EXPECT_THAT(e.what(), HasSubstr(fragment));
    }
  }

  fs::path dir_;
};

// "hello" and "world" in base64.
constexpr const char* kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: aGVsbG8=
- name: c2
  cluster:
    server: https://127.0.0.2:7443
    certificate-authority: ca.pem
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    token: secret-token
- name: u2
  user:
    client-certificate: certs/client.pem
    client-key-data: d29ybGQ=
contexts:
- name: dev
  context: {cluster: c1, user: u1, namespace: team-a}
- name: ops
  context: {cluster: c2, user: u2}
)";

TEST_F(ConfigTest, LoadsCurrentContextWithEmbeddedData) {
  Config c = LoadKubeconfig(Write("kubeconfig", kTwoContexts));
  EXPECT_EQ(c.server, "https://127.0.0.1:6443");
  EXPECT_EQ(c.ca_pem, "hello");
  EXPECT_EQ(c.token, "secret-token");
  EXPECT_EQ(c.default_namespace, "team-a");
  EXPECT_FALSE(c.insecure_skip_tls_verify);
  EXPECT_TRUE(c.client_cert_pem.empty());
}

TEST_F(ConfigTest, ExplicitContextReadsFilesRelativeToKubeconfig) {
  Write("ca.pem", "CA-PEM");
  fs::create_directories(dir_ / "certs");
  Write("certs/client.pem", "CLIENT-PEM");
  Config c = LoadKubeconfig(Write("kubeconfig", kTwoContexts), "ops");
  EXPECT_EQ(c.server, "https://127.0.0.2:7443");
  EXPECT_EQ(c.ca_pem, "CA-PEM");
  EXPECT_EQ(c.client_cert_pem, "CLIENT-PEM");
  EXPECT_EQ(c.client_key_pem, "world");
  EXPECT_TRUE(c.insecure_skip_tls_verify);
  EXPECT_EQ(c.default_namespace, "default");
}

TEST_F(ConfigTest, MissingFileNamesThePath) {
  fs::path missing = dir_ / "nope";
  ExpectConfigError([&] { LoadKubeconfig(missing); }, {missing.string(), "file not found"});
}

TEST_F(ConfigTest, GarbageYamlNamesTheLine) {
  fs::path path =
      Write("kubeconfig", "apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: [\n");
  ExpectConfigError([&] { LoadKubeconfig(path); }, {path.string(), "invalid YAML at line"});
}

TEST_F(ConfigTest, NonMapYamlIsRejected) {
  fs::path path = Write("kubeconfig", "- just\n- a list\n");
  ExpectConfigError([&] { LoadKubeconfig(path); }, {"not a YAML map"});
}

TEST_F(ConfigTest, MissingContextIsNamed) {
  fs::path path = Write("kubeconfig", kTwoContexts);
  ExpectConfigError([&] { LoadKubeconfig(path, "staging"); }, {"context 'staging' not found"});
}

TEST_F(ConfigTest, MissingReferencedFileIsNamed) {
  fs::path path = Write("kubeconfig", kTwoContexts);  // ops names ca.pem, which is absent
  ExpectConfigError([&] { LoadKubeconfig(path, "ops"); }, {"certificate-authority", "ca.pem"});
}

TEST_F(ConfigTest, BadBase64IsRejected) {
  std::string text = kTwoContexts;
  text.replace(text.find("aGVsbG8="), 8, "a!b");
  ExpectConfigError([&] { LoadKubeconfig(Write("kubeconfig", text)); },
                    {"certificate-authority-data", "base64"});
}

TEST_F(ConfigTest, CertificateWithoutKeyIsRejected) {
  std::string text = kTwoContexts;
  text.replace(text.find("    client-key-data: d29ybGQ=\n"), 29, "");
  Write("ca.pem", "x");
  fs::create_directories(dir_ / "certs");
  Write("certs/client.pem", "x");
  ExpectConfigError([&] { LoadKubeconfig(Write("kubeconfig", text), "ops"); }, {"without a key"});
}

TEST_F(ConfigTest, InClusterUsesServiceAccountFiles) {
  Write("token", "sa-token\n");
  Write("ca.crt", "CLUSTER-CA");
  Write("namespace", "vios-system\n");
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.9", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  Config c = LoadInClusterConfig(dir_);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  EXPECT_EQ(c.server, "https://127.0.0.9:443");
  EXPECT_EQ(c.ca_pem, "CLUSTER-CA");
  EXPECT_EQ(c.token_file, (dir_ / "token").string());
  EXPECT_EQ(c.default_namespace, "vios-system");
}

TEST_F(ConfigTest, InClusterWithoutEnvironmentSaysSo) {
  unsetenv("KUBERNETES_SERVICE_HOST");
  ExpectConfigError([&] { LoadInClusterConfig(dir_); }, {"KUBERNETES_SERVICE_HOST"});
}

TEST_F(ConfigTest, InClusterWithoutTokenNamesTheFile) {
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.9", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ExpectConfigError([&] { LoadInClusterConfig(dir_); }, {(dir_ / "token").string()});
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
}

TEST_F(ConfigTest, DefaultConfigFollowsKubeconfigEnv) {
  fs::path path = Write("kubeconfig", kTwoContexts);
  setenv("KUBECONFIG", path.c_str(), 1);
  Config c = LoadDefaultConfig();
  unsetenv("KUBECONFIG");
  EXPECT_EQ(c.server, "https://127.0.0.1:6443");
}

}  // namespace
}  // namespace vios::kube
