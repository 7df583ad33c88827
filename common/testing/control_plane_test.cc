// Integration test of the local control plane harness: it really starts etcd + kube-apiserver,
// serves the CRDs, survives an API server restart with its data, and compacts etcd.
#include "common/testing/control_plane.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace vios::testing {
namespace {

// Starts the shared control plane before the first test and stops it after the last.
[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ControlPlaneEnvironment);

// Kubectl runs the pinned kubectl against the control plane; returns stdout+stderr and sets *rc.
std::string Kubectl(const ControlPlane& cp, const std::string& args, int* rc) {
  std::string cmd = "\"$(\"" + std::string(std::getenv("VIOS_SOURCE_DIR")) +
                    "/e2e/tools/tool-path\" kubectl)\" --kubeconfig '" + cp.KubeconfigPath() +
                    "' " + args + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  *rc = pclose(p);
  return out;
}

TEST(ControlPlaneTest, ServesReadyzWithAdminKubeconfig) {
  ControlPlane& cp = SharedControlPlane();
  int rc = 0;
  std::string out = Kubectl(cp, "get --raw /readyz", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "ok");
  out = Kubectl(cp, "auth can-i '*' '*'", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "yes\n");
}

TEST(ControlPlaneTest, InstallsViosCrds) {
  ControlPlane& cp = SharedControlPlane();
  int rc = 0;
  std::string out = Kubectl(
      cp, "get crd viosclusters.vios.dev viosmembers.vios.dev viosvolumes.vios.dev -o name", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out,
            "customresourcedefinition.apiextensions.k8s.io/viosclusters.vios.dev\n"
            "customresourcedefinition.apiextensions.k8s.io/viosmembers.vios.dev\n"
            "customresourcedefinition.apiextensions.k8s.io/viosvolumes.vios.dev\n");
}

TEST(ControlPlaneTest, RestartApiServerKeepsData) {
  ControlPlane& cp = SharedControlPlane();
  int rc = 0;
  std::string out = Kubectl(cp, "create configmap restart-probe --from-literal=k=v", &rc);
  ASSERT_EQ(rc, 0) << out;
  cp.RestartApiServer();
  out = Kubectl(cp, "get configmap restart-probe -o jsonpath={.data.k}", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "v");
}

TEST(ControlPlaneTest, CompactMakesOldResourceVersionsGone) {
  ControlPlane& cp = SharedControlPlane();
  int rc = 0;
  std::string old_rv =
      Kubectl(cp, "create configmap compact-probe -o jsonpath={.metadata.resourceVersion}", &rc);
  ASSERT_EQ(rc, 0) << old_rv;
  std::string out = Kubectl(cp, "label configmap compact-probe round=1", &rc);
  ASSERT_EQ(rc, 0) << out;
  cp.Compact();
  // Reads at a compacted revision answer 410 Gone (reason Expired)...
  out = Kubectl(cp,
                "get --raw '/api/v1/namespaces/default/configmaps?resourceVersion=" + old_rv +
                    "&resourceVersionMatch=Exact'",
                &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("Expired"), std::string::npos) << out;
  // ...and so do watches from it: the API server's watch cache forgot the old history too.
  out = Kubectl(cp,
                "get --raw '/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=5"
                "&resourceVersion=" +
                    old_rv + "'",
                &rc);
  EXPECT_NE(out.find("\"code\":410"), std::string::npos) << out;
}

TEST(ControlPlaneTest, StartFailsClearlyWithoutSourceDir) {
  const char* source_dir = std::getenv("VIOS_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "run through ctest, which sets VIOS_SOURCE_DIR";
  std::string saved = source_dir;
  unsetenv("VIOS_SOURCE_DIR");
  try {
    ControlPlane::Start(false);
    ADD_FAILURE() << "Start succeeded without VIOS_SOURCE_DIR";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("VIOS_SOURCE_DIR"), std::string::npos) << e.what();
  }
  setenv("VIOS_SOURCE_DIR", saved.c_str(), 1);
}

}  // namespace
}  // namespace vios::testing
