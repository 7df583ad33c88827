// The informer's local cache: objects keyed by "namespace/name" (or "name" for cluster-scoped
// objects), and the deltas a list or a watch event makes to it. Pure logic, no I/O, so the
// rules (what a re-list deletes, what an event changes) are tested on their own.
//
//   kube::ObjectCache cache;
//   for (const kube::Delta& d : cache.Replace(list.items)) Dispatch(d);
//   if (auto d = cache.Apply(event)) Dispatch(*d);
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/kube/watch.h"

namespace vios::kube {

// KeyOf returns "namespace/name", or "name" for an object without a namespace.
std::string KeyOf(const nlohmann::json& obj);
// ResourceVersionOf returns metadata.resourceVersion or "".
std::string ResourceVersionOf(const nlohmann::json& obj);

// Delta is one change to the cache, as handlers see it.
struct Delta {
  enum class Type { kAdded, kUpdated, kDeleted };
  Type type = Type::kAdded;
  nlohmann::json old_object;  // kUpdated: the previous state; kDeleted: the last known state
  nlohmann::json object;      // kAdded/kUpdated: the new state; kDeleted: the final state
};

// ObjectCache is thread-safe; readers get copies.
class ObjectCache {
 public:
  // Replace makes items the whole content (after a list). It returns an add for each new key,
  // an update for each key whose resourceVersion changed, and a delete (with the last known
  // state) for each key that is gone: objects deleted while no watch was running.
  std::vector<Delta> Replace(const nlohmann::json& items);

  // Apply folds a watch event in; bookmarks and errors change nothing (nullopt). An ADDED for a
  // known key is an update, a MODIFIED for an unknown key an add, a DELETED for an unknown key
  // nothing.
  std::optional<Delta> Apply(const WatchEvent& event);

  std::optional<nlohmann::json> Get(const std::string& key) const;
  std::vector<nlohmann::json> List() const;
  std::vector<std::string> Keys() const;
  size_t Size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> objects_;
};

}  // namespace vios::kube
