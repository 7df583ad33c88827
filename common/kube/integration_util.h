// Helpers shared by the common/kube integration tests: a Client for the shared local control
// plane and a fresh namespace per test.
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/testing/control_plane.h"

namespace vios::kube::testing {

inline Config ControlPlaneConfig() {
  return LoadKubeconfig(vios::testing::SharedControlPlane().KubeconfigPath());
}

inline Client& TestClient() {
  static Client client(ControlPlaneConfig());
  return client;
}

inline std::string RandomSuffix() {
  static std::mt19937 rng(std::random_device{}());
  static const char* kChars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 6; ++i) s.push_back(kChars[rng() % 36]);
  return s;
}

// NewNamespace creates and returns a namespace "<prefix>-<random>".
inline std::string NewNamespace(const std::string& prefix) {
  std::string name = prefix + "-" + RandomSuffix();
  TestClient().Create(
      resources::kNamespaces, "",
      {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
  return name;
}

inline nlohmann::json ConfigMap(const std::string& ns, const std::string& name,
                                nlohmann::json data = nlohmann::json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", std::move(data)}};
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
inline bool Eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

}  // namespace vios::kube::testing
