// A real local Kubernetes control plane (etcd + kube-apiserver on loopback) for integration tests.
//
//   TEST(InformerTest, SurvivesApiServerRestart) {
//     auto& cp = vios::testing::SharedControlPlane();   // started once per test binary
//     Client client = Client::FromKubeconfig(cp.KubeconfigPath());
//     ...
//     cp.RestartApiServer();
//   }
//
// It drives the harness CLI e2e/controlplane/controlplane (found through VIOS_SOURCE_DIR, which
// vios_test sets) in a fresh temporary directory. The binaries come from the tool cache that
// e2e/tools/build-tools fills; when they are missing Start() throws with a message that says so,
// so a test that needs the control plane FAILS rather than skips.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace vios::testing {

// ControlPlane owns one running etcd + kube-apiserver pair; the destructor stops both.
class ControlPlane {
 public:
  // Start brings up a new control plane in a temporary directory and waits until the API server
  // answers /readyz. With install_crds the vios CRDs (crds/*.yaml) are applied and Established.
  // Throws std::runtime_error naming the problem (tools not built, start failure, timeout).
  static std::unique_ptr<ControlPlane> Start(bool install_crds);

  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // KubeconfigPath is an admin (system:masters) kubeconfig with embedded credentials.
  const std::string& KubeconfigPath() const { return kubeconfig_; }
  // Dir is the working directory: certificates, etcd data, logs (apiserver.log, etcd.log).
  const std::string& Dir() const { return dir_; }
  // RestartApiServer stops kube-apiserver and starts it again on the same port with the same
  // certificates and etcd; returns once it is ready again. Throws on failure.
  void RestartApiServer();
  // Compact compacts etcd to its current revision, so watches and lists from older
  // resourceVersions answer 410 Gone. Throws on failure.
  void Compact();
  // Stop stops both processes (SIGTERM, then SIGKILL) and removes Dir; idempotent.
  void Stop();

 private:
  ControlPlane(std::string source_dir, std::string dir);
  // RunCli runs the harness CLI with a subcommand and "--dir Dir()" plus extra arguments; returns
  // its stdout and throws with its diagnostics when it fails.
  std::string RunCli(const std::string& command, const std::vector<std::string>& extra) const;

  std::string source_dir_;
  std::string dir_;
  std::string kubeconfig_;
  bool running_ = false;
};

// SharedControlPlane is one control plane per test binary, with the CRDs installed, started on
// the first call and stopped when the process exits (or by ControlPlaneEnvironment::TearDown). If
// starting failed, every call throws the same error again without retrying.
ControlPlane& SharedControlPlane();

// ControlPlaneEnvironment starts the shared control plane before the first test and stops it after
// the last. If starting fails, the tests that use SharedControlPlane() fail with the error.
// Optional: register it in main with ::testing::AddGlobalTestEnvironment(new
// ControlPlaneEnvironment) to pay the start-up cost up front; SharedControlPlane() works without.
class ControlPlaneEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;
};

}  // namespace vios::testing
