// Integration tests of the client verbs against a real kube-apiserver (local control plane).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "common/kube/integration_util.h"

namespace vios::kube {
namespace {

using namespace kube::testing;
using ::testing::HasSubstr;
namespace r = resources;

ErrorKind KindOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ErrorKind::kOther;
}

TEST(ClientIntegrationTest, ConfigMapCrudWithConflictsAndPreconditions) {
  Client& c = TestClient();
  std::string ns = NewNamespace("crud");
  nlohmann::json created = c.Create(r::kConfigMaps, ns, ConfigMap(ns, "settings", {{"a", "1"}}));
  EXPECT_FALSE(created["metadata"]["resourceVersion"].get<std::string>().empty());
  EXPECT_EQ(KindOf([&] { c.Create(r::kConfigMaps, ns, ConfigMap(ns, "settings")); }),
            ErrorKind::kAlreadyExists);

  nlohmann::json got = c.Get(r::kConfigMaps, ns, "settings");
  EXPECT_EQ(got["data"]["a"], "1");
  got["data"]["a"] = "2";
  nlohmann::json updated = c.Update(r::kConfigMaps, got);
  EXPECT_EQ(updated["data"]["a"], "2");

  // got still carries the old resourceVersion: a second writer with it must lose.
  got["data"]["a"] = "stale";
  try {
    c.Update(r::kConfigMaps, got);
    FAIL() << "stale update accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConflict);
    EXPECT_EQ(e.code(), 409);
    EXPECT_THAT(e.what(), HasSubstr("PUT /api/v1/namespaces/" + ns + "/configmaps/settings"));
  }

  nlohmann::json patched = c.Patch(r::kConfigMaps, ns, "settings", {{"data", {{"b", "3"}}}});
  EXPECT_EQ(patched["data"]["a"], "2");
  EXPECT_EQ(patched["data"]["b"], "3");
  patched = c.Patch(r::kConfigMaps, ns, "settings", {{"data", {{"a", nullptr}}}});
  EXPECT_FALSE(patched["data"].contains("a"));  // RFC 7386: null removes

  DeleteOptions wrong_rv;
  wrong_rv.precondition_resource_version = created["metadata"]["resourceVersion"];
  EXPECT_EQ(KindOf([&] { c.Delete(r::kConfigMaps, ns, "settings", wrong_rv); }),
            ErrorKind::kConflict);
  DeleteOptions right;
  right.precondition_uid = created["metadata"]["uid"];
  right.propagation_policy = "Background";
  c.Delete(r::kConfigMaps, ns, "settings", right);
  EXPECT_EQ(KindOf([&] { c.Get(r::kConfigMaps, ns, "settings"); }), ErrorKind::kNotFound);
}

TEST(ClientIntegrationTest, ServerSideApplyOwnsFieldsPerManager) {
  Client& c = TestClient();
  std::string ns = NewNamespace("ssa");
  nlohmann::json intent = ConfigMap(ns, "applied", {{"mode", "fast"}});
  nlohmann::json first = c.Apply(r::kConfigMaps, ns, "applied", intent, "manager-a");
  EXPECT_EQ(first["data"]["mode"], "fast");
  nlohmann::json other = ConfigMap(ns, "applied", {{"mode", "slow"}});
  try {
    c.Apply(r::kConfigMaps, ns, "applied", other, "manager-b");
    FAIL() << "conflicting apply accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConflict);
    EXPECT_THAT(e.what(), HasSubstr("manager-a"));
  }
  nlohmann::json forced = c.Apply(r::kConfigMaps, ns, "applied", other, "manager-b", true);
  EXPECT_EQ(forced["data"]["mode"], "slow");
  bool b_owns = false;
  for (const auto& m : forced["metadata"]["managedFields"]) {
    if (m["manager"] == "manager-b" && m["operation"] == "Apply") b_owns = true;
  }
  EXPECT_TRUE(b_owns);
}

TEST(ClientIntegrationTest, ListPaginatesAndFilters) {
  Client& c = TestClient();
  std::string ns = NewNamespace("page");
  for (int i = 0; i < 25; ++i) {
    nlohmann::json cm = ConfigMap(ns, "cm-" + std::to_string(i));
    cm["metadata"]["labels"] = {{"parity", i % 2 == 0 ? "even" : "odd"}};
    c.Create(r::kConfigMaps, ns, cm);
  }
  ListOptions page;
  page.limit = 10;
  ListResult first = c.List(r::kConfigMaps, ns, page);
  EXPECT_EQ(first.items.size(), 10u);
  EXPECT_FALSE(first.continue_token.empty());
  page.continue_token = first.continue_token;
  ListResult second = c.List(r::kConfigMaps, ns, page);
  EXPECT_EQ(second.items.size(), 10u);
  EXPECT_NE(first.items[0]["metadata"]["name"], second.items[0]["metadata"]["name"]);

  // Pages of 7 from one snapshot: every object exactly once (no controller-manager runs here,
  // but count only ours in case something else publishes into the namespace).
  std::set<std::string> names;
  for (const auto& item : c.ListAll(r::kConfigMaps, ns, {}, 7).items) {
    std::string name = item["metadata"]["name"];
    if (name.rfind("cm-", 0) == 0) {
      EXPECT_TRUE(names.insert(name).second) << name;
    }
  }
  EXPECT_EQ(names.size(), 25u);
}

TEST(ClientIntegrationTest, SelectorsFilterLists) {
  Client& c = TestClient();
  std::string ns = NewNamespace("select");
  for (int i = 0; i < 6; ++i) {
    nlohmann::json cm = ConfigMap(ns, "cm-" + std::to_string(i));
    cm["metadata"]["labels"] = {{"parity", i % 2 == 0 ? "even" : "odd"}};
    c.Create(r::kConfigMaps, ns, cm);
  }
  ListOptions even;
  even.label_selector = "parity=even";
  EXPECT_EQ(c.ListAll(r::kConfigMaps, ns, even, 2).items.size(), 3u);
  ListOptions by_name;
  by_name.field_selector = "metadata.name=cm-4";
  ListResult one = c.List(r::kConfigMaps, ns, by_name);
  ASSERT_EQ(one.items.size(), 1u);
  EXPECT_EQ(one.items[0]["metadata"]["name"], "cm-4");
}

nlohmann::json Cluster(const std::string& ns) {
  return {
      {"apiVersion", "vios.dev/v1alpha1"},
      {"kind", "VIOSCluster"},
      {"metadata", {{"name", "local"}, {"namespace", ns}}},
      {"spec",
       {{"pools",
         {{{"name", "default"},
           {"extentSize", "64Mi"},
           {"backends",
            {{{"name", "file0"},
              {"file", {{"path", "/var/lib/vios/pool-default-0.img"}, {"size", "4Gi"}}}}}}}}}}}};
}

nlohmann::json Member(const std::string& ns) {
  return {{"apiVersion", "vios.dev/v1alpha1"},
          {"kind", "VIOSMember"},
          {"metadata", {{"name", "local-node-1"}, {"namespace", ns}}},
          {"spec", {{"cluster", "local"}, {"nodeName", "node-1"}}}};
}

nlohmann::json Volume(const std::string& ns) {
  return {{"apiVersion", "vios.dev/v1alpha1"},
          {"kind", "VIOSVolume"},
          {"metadata", {{"name", "pvc-0b1c5d2e"}, {"namespace", ns}}},
          {"spec",
           {{"cluster", "local"},
            {"pool", "default"},
            {"size", "128Mi"},
            {"accessModes", {"ReadWriteOnce"}},
            {"extents", {{{"backend", "file0"}, {"offset", 0}, {"length", 67108864}}}}}}};
}

// CrdRoundTrip creates obj, writes status through the status subresource (PUT, then merge
// patch), and checks that the main resource ignores status while the status endpoint ignores spec.
void CrdRoundTrip(const ResourceRef& ref, nlohmann::json obj, const nlohmann::json& status1,
                  const nlohmann::json& status2) {
  Client& c = TestClient();
  std::string ns = obj["metadata"]["namespace"];
  std::string name = obj["metadata"]["name"];
  obj["status"] = status1;
  nlohmann::json created = c.Create(ref, ns, obj);
  EXPECT_FALSE(created.contains("status")) << "status must be ignored on create";
  created["status"] = status1;
  nlohmann::json with_status = c.UpdateStatus(ref, created);
  for (auto& [k, v] : status1.items()) EXPECT_EQ(with_status["status"][k], v) << k;
  EXPECT_EQ(with_status["metadata"]["generation"], 1);  // status writes leave generation alone
  nlohmann::json patched = c.PatchStatus(ref, ns, name, {{"status", status2}});
  for (auto& [k, v] : status2.items()) EXPECT_EQ(patched["status"][k], v) << k;
  // Stale status write: Conflict.
  EXPECT_THROW(c.UpdateStatus(ref, with_status), ApiError);
  nlohmann::json listed = c.List(ref, ns).items;
  ASSERT_EQ(listed.size(), 1u);
  c.Delete(ref, ns, name);
  EXPECT_TRUE(Eventually([&] {
    try {
      c.Get(ref, ns, name);
      return false;
    } catch (const ApiError& e) {
      return e.kind() == ErrorKind::kNotFound;
    }
  }));
}

TEST(ClientIntegrationTest, VIOSClusterCrudAndStatus) {
  std::string ns = NewNamespace("crd-cluster");
  CrdRoundTrip(r::kVIOSClusters, Cluster(ns), {{"observedGeneration", 1}},
               {{"observedGeneration", 2}});
}

TEST(ClientIntegrationTest, VIOSMemberCrudAndStatus) {
  std::string ns = NewNamespace("crd-member");
  CrdRoundTrip(r::kVIOSMembers, Member(ns), {{"state", "Joining"}, {"version", "0.1.0"}},
               {{"state", "Up"}, {"peerAddress", "127.0.0.1:7443"}});
}

TEST(ClientIntegrationTest, VIOSVolumeCrudAndStatus) {
  std::string ns = NewNamespace("crd-volume");
  CrdRoundTrip(r::kVIOSVolumes, Volume(ns), {{"phase", "Pending"}}, {{"phase", "Available"}});
}

TEST(ClientIntegrationTest, InvalidVolumeNamesTheFields) {
  std::string ns = NewNamespace("invalid");
  nlohmann::json bad = Volume(ns);
  bad["spec"].erase("pool");
  bad["spec"]["volumeMode"] = "Tape";
  try {
    TestClient().Create(r::kVIOSVolumes, ns, bad);
    FAIL() << "invalid volume accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalid);
    EXPECT_EQ(e.code(), 422);
    std::set<std::string> fields;
    for (const auto& cause : e.causes()) fields.insert(cause.field);
    EXPECT_TRUE(fields.count("spec.pool")) << e.what();
    EXPECT_TRUE(fields.count("spec.volumeMode")) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("spec.volumeMode"));
  }
}

TEST(ClientIntegrationTest, BadCredentialsAreUnauthorized) {
  Config config = ControlPlaneConfig();
  config.client_cert_pem.clear();
  config.client_key_pem.clear();
  config.token = "not-a-valid-token";
  Client c(config);
  EXPECT_EQ(KindOf([&] { c.Get(r::kNamespaces, "", "default"); }), ErrorKind::kUnauthorized);
}

TEST(ClientIntegrationTest, UntrustedServerCertificateIsTlsError) {
  Config config = ControlPlaneConfig();
  config.ca_pem.clear();  // system CAs do not sign the local API server
  RetryPolicy once;
  once.max_attempts = 1;
  Client c(config, once);
  try {
    c.Get(r::kNamespaces, "", "default");
    FAIL() << "untrusted server accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kTls);
    EXPECT_THAT(e.what(), HasSubstr("TLS"));
  }
}

}  // namespace
}  // namespace vios::kube
