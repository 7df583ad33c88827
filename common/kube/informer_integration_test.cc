// Integration tests of watches and informers against a real kube-apiserver: events, survival of
// an API server restart, and the re-list after 410 Gone (etcd compaction).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "common/kube/informer.h"
#include "common/kube/integration_util.h"
#include "common/kube/watch.h"

namespace vios::kube {
namespace {

using namespace kube::testing;
namespace r = resources;

// Recorder collects what an informer's handlers saw.
struct Recorder {
  std::mutex mu;
  std::set<std::string> added, updated, deleted;
  ResourceEventHandler Handler() {
    return {[this](const nlohmann::json& o) {
              std::lock_guard<std::mutex> l(mu);
              added.insert(o["metadata"]["name"]);
            },
            [this](const nlohmann::json&, const nlohmann::json& o) {
              std::lock_guard<std::mutex> l(mu);
              updated.insert(o["metadata"]["name"]);
            },
            [this](const nlohmann::json& o) {
              std::lock_guard<std::mutex> l(mu);
              deleted.insert(o["metadata"]["name"]);
            }};
  }
  bool Saw(std::set<std::string>& set, const std::string& name) {
    std::lock_guard<std::mutex> l(mu);
    return set.count(name) != 0;
  }
};

TEST(WatchIntegrationTest, WatchFromListVersionSeesChangesAndStops) {
  Client& c = TestClient();
  std::string ns = NewNamespace("watch");
  ListResult list = c.List(r::kConfigMaps, ns);
  WatchOptions options;
  options.resource_version = list.resource_version;
  Watcher watcher(c, r::kConfigMaps, ns, options);
  std::mutex mu;
  std::vector<std::string> seen;
  std::thread t([&] {
    watcher.Run([&](const WatchEvent& e) {
      if (e.type == WatchEventType::kBookmark) return;
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(std::string(WatchEventTypeName(e.type)) + " " +
                     e.object["metadata"]["name"].get<std::string>());
    });
  });
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "w1"));
  c.Patch(r::kConfigMaps, ns, "w1", {{"data", {{"k", "v"}}}});
  c.Delete(r::kConfigMaps, ns, "w1");
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> l(mu);
    return seen.size() >= 3;
  }));
  watcher.Stop();
  t.join();
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED w1", "MODIFIED w1", "DELETED w1"}));
}

TEST(InformerIntegrationTest, CacheFollowsAddUpdateDelete) {
  Client& c = TestClient();
  std::string ns = NewNamespace("inf");
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "before"));
  Informer informer(c, r::kConfigMaps, ns);
  Recorder rec;
  informer.AddHandler(rec.Handler());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(20)));
  EXPECT_TRUE(informer.HasSynced());
  EXPECT_TRUE(rec.Saw(rec.added, "before"));
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "after"));
  c.Patch(r::kConfigMaps, ns, "before", {{"data", {{"x", "1"}}}});
  c.Delete(r::kConfigMaps, ns, "after");
  EXPECT_TRUE(Eventually([&] { return rec.Saw(rec.deleted, "after"); }));
  EXPECT_TRUE(rec.Saw(rec.added, "after"));
  EXPECT_TRUE(rec.Saw(rec.updated, "before"));
  auto cached = informer.Get(ns, "before");
  ASSERT_TRUE(cached);
  EXPECT_EQ((*cached)["data"]["x"], "1");
  EXPECT_FALSE(informer.Get(ns, "after"));
  informer.Stop();
}

TEST(InformerIntegrationTest, ResyncRedeliversCachedObjects) {
  Client& c = TestClient();
  std::string ns = NewNamespace("resync");
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "steady"));
  InformerOptions options;
  options.resync_period = std::chrono::milliseconds(300);
  Informer informer(c, r::kConfigMaps, ns, options);
  std::atomic<int> resyncs{0};
  informer.AddHandler({nullptr,
                       [&](const nlohmann::json& old_obj, const nlohmann::json& obj) {
                         if (old_obj == obj) resyncs++;
                       },
                       nullptr});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(20)));
  EXPECT_TRUE(Eventually([&] { return resyncs.load() >= 2; }, std::chrono::seconds(5)));
}

TEST(InformerIntegrationTest, SurvivesApiServerRestart) {
  Client& c = TestClient();
  std::string ns = NewNamespace("restart");
  InformerOptions options;
  options.initial_backoff = std::chrono::milliseconds(100);
  options.max_backoff = std::chrono::milliseconds(1000);
  Informer informer(c, r::kConfigMaps, ns, options);
  Recorder rec;
  informer.AddHandler(rec.Handler());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(20)));
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "old"));
  ASSERT_TRUE(Eventually([&] { return rec.Saw(rec.added, "old"); }));

  vios::testing::SharedControlPlane().RestartApiServer();
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "new-after-restart"));
  EXPECT_TRUE(Eventually([&] { return rec.Saw(rec.added, "new-after-restart"); },
                         std::chrono::seconds(30)));
  EXPECT_GE(informer.watch_failures(), 1u);  // the watch did break, and was re-established
  EXPECT_TRUE(informer.Get(ns, "old"));
}

TEST(InformerIntegrationTest, RelistsAfterCompactionAndSynthesizesDeletes) {
  Client& c = TestClient();
  std::string ns = NewNamespace("gone");
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "stays"));
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "vanishes"));
  InformerOptions options;
  // A long, fixed reconnect delay leaves a window in which the informer does not watch.
  options.initial_backoff = std::chrono::milliseconds(4000);
  options.max_backoff = std::chrono::milliseconds(4000);
  Informer informer(c, r::kConfigMaps, ns, options);
  Recorder rec;
  informer.AddHandler(rec.Handler());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(20)));
  ASSERT_EQ(informer.lists(), 1u);
  // A write elsewhere moves etcd's revision past the informer's resourceVersion.
  std::string other = NewNamespace("gone-other");
  c.Create(r::kConfigMaps, other, ConfigMap(other, "bump"));

  vios::testing::SharedControlPlane().Compact();  // history gone; the API server restarts
  // While the informer waits to reconnect: a delete and a create it cannot see as events.
  c.Delete(r::kConfigMaps, ns, "vanishes");
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "appears"));

  EXPECT_TRUE(
      Eventually([&] { return rec.Saw(rec.deleted, "vanishes"); }, std::chrono::seconds(40)));
  EXPECT_TRUE(Eventually([&] { return rec.Saw(rec.added, "appears"); }));
  EXPECT_GE(informer.lists(), 2u) << "no re-list after 410";
  EXPECT_FALSE(informer.Get(ns, "vanishes"));
  EXPECT_TRUE(informer.Get(ns, "stays"));
}

TEST(WatchIntegrationTest, WatchFromCompactedVersionIsExpired) {
  Client& c = TestClient();
  std::string ns = NewNamespace("expired");
  ListResult list = c.List(r::kConfigMaps, ns);
  c.Create(r::kConfigMaps, ns, ConfigMap(ns, "after-list"));
  vios::testing::SharedControlPlane().Compact();
  WatchOptions options;
  options.resource_version = list.resource_version;
  Watcher watcher(c, r::kConfigMaps, ns, options);
  try {
    watcher.Run([](const WatchEvent&) {});
    FAIL() << "watch from a compacted resourceVersion did not expire";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kExpired) << e.what();
  }
}

}  // namespace
}  // namespace vios::kube
