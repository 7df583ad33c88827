// Unit tests for the informer cache: list replacement and watch events as deltas.
#include "common/kube/cache.h"

#include <gtest/gtest.h>

namespace vios::kube {
namespace {

nlohmann::json Obj(const std::string& name, const std::string& rv, const std::string& ns = "a") {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", rv}}}};
}

TEST(ObjectCacheTest, KeysIncludeNamespaceWhenPresent) {
  EXPECT_EQ(KeyOf(Obj("x", "1")), "a/x");
  EXPECT_EQ(KeyOf(Obj("node-1", "1", "")), "node-1");
}

TEST(ObjectCacheTest, FirstListAddsEverything) {
  ObjectCache cache;
  auto deltas = cache.Replace(nlohmann::json::array({Obj("x", "1"), Obj("y", "2")}));
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_EQ(deltas[0].type, Delta::Type::kAdded);
  EXPECT_EQ(cache.Size(), 2u);
  EXPECT_EQ((*cache.Get("a/y"))["metadata"]["resourceVersion"], "2");
}

TEST(ObjectCacheTest, RelistSynthesizesDeletesForVanishedObjects) {
  ObjectCache cache;
  cache.Replace(nlohmann::json::array({Obj("x", "1"), Obj("y", "2"), Obj("z", "3")}));
  // While the watch was down: y was deleted, z changed, w was created.
  auto deltas = cache.Replace(nlohmann::json::array({Obj("x", "1"), Obj("z", "7"), Obj("w", "8")}));
  ASSERT_EQ(deltas.size(), 3u);
  std::map<std::string, Delta> by_key;
  for (auto& d : deltas) {
    by_key[KeyOf(d.type == Delta::Type::kDeleted ? d.old_object : d.object)] = d;
  }
  EXPECT_EQ(by_key["a/y"].type, Delta::Type::kDeleted);
  EXPECT_EQ(by_key["a/y"].old_object["metadata"]["resourceVersion"], "2");
  EXPECT_EQ(by_key["a/z"].type, Delta::Type::kUpdated);
  EXPECT_EQ(by_key["a/z"].old_object["metadata"]["resourceVersion"], "3");
  EXPECT_EQ(by_key["a/w"].type, Delta::Type::kAdded);
  EXPECT_EQ(by_key.count("a/x"), 0u);  // unchanged: no event
  EXPECT_FALSE(cache.Get("a/y"));
}

TEST(ObjectCacheTest, WatchEventsBecomeDeltas) {
  ObjectCache cache;
  auto added = cache.Apply({WatchEventType::kAdded, Obj("x", "1")});
  ASSERT_TRUE(added);
  EXPECT_EQ(added->type, Delta::Type::kAdded);
  auto modified = cache.Apply({WatchEventType::kModified, Obj("x", "2")});
  ASSERT_TRUE(modified);
  EXPECT_EQ(modified->type, Delta::Type::kUpdated);
  EXPECT_EQ(modified->old_object["metadata"]["resourceVersion"], "1");
  // ADDED for a known key (a watch restarted without a list) is an update.
  EXPECT_EQ(cache.Apply({WatchEventType::kAdded, Obj("x", "3")})->type, Delta::Type::kUpdated);
  // MODIFIED for an unknown key is an add.
  EXPECT_EQ(cache.Apply({WatchEventType::kModified, Obj("y", "4")})->type, Delta::Type::kAdded);
  auto deleted = cache.Apply({WatchEventType::kDeleted, Obj("x", "5")});
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->type, Delta::Type::kDeleted);
  EXPECT_EQ(deleted->old_object["metadata"]["resourceVersion"], "3");
  EXPECT_FALSE(cache.Apply({WatchEventType::kDeleted, Obj("x", "6")}));
  EXPECT_FALSE(cache.Apply({WatchEventType::kBookmark, Obj("", "9")}));
  EXPECT_EQ(cache.Keys(), std::vector<std::string>{"a/y"});
}

}  // namespace
}  // namespace vios::kube
