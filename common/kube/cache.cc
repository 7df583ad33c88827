// ObjectCache implementation.
#include "common/kube/cache.h"

namespace vios::kube {

namespace {
std::string Meta(const nlohmann::json& obj, const char* key) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return "";
  auto it = meta->find(key);
  return it != meta->end() && it->is_string() ? it->get<std::string>() : "";
}
}  // namespace

std::string KeyOf(const nlohmann::json& obj) {
  std::string ns = Meta(obj, "namespace");
  std::string name = Meta(obj, "name");
  return ns.empty() ? name : ns + "/" + name;
}

std::string ResourceVersionOf(const nlohmann::json& obj) { return Meta(obj, "resourceVersion"); }

std::vector<Delta> ObjectCache::Replace(const nlohmann::json& items) {
  std::map<std::string, nlohmann::json> next;
  for (const auto& item : items) {
    if (item.is_object()) next[KeyOf(item)] = item;
  }
  std::vector<Delta> deltas;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, old] : objects_) {
    if (next.count(key) == 0) deltas.push_back({Delta::Type::kDeleted, old, old});
  }
  for (const auto& [key, obj] : next) {
    auto it = objects_.find(key);
    if (it == objects_.end()) {
      deltas.push_back({Delta::Type::kAdded, nullptr, obj});
    } else if (ResourceVersionOf(it->second) != ResourceVersionOf(obj)) {
      deltas.push_back({Delta::Type::kUpdated, it->second, obj});
    }
  }
  objects_ = std::move(next);
  return deltas;
}

std::optional<Delta> ObjectCache::Apply(const WatchEvent& event) {
  if (event.type == WatchEventType::kBookmark || event.type == WatchEventType::kError) {
    return std::nullopt;
  }
  std::string key = KeyOf(event.object);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (event.type == WatchEventType::kDeleted) {
    if (it == objects_.end()) return std::nullopt;
    Delta d{Delta::Type::kDeleted, std::move(it->second), event.object};
    objects_.erase(it);
    return d;
  }
  if (it == objects_.end()) {
    objects_.emplace(key, event.object);
    return Delta{Delta::Type::kAdded, nullptr, event.object};
  }
  Delta d{Delta::Type::kUpdated, std::move(it->second), event.object};
  it->second = event.object;
  return d;
}

std::optional<nlohmann::json> ObjectCache::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::vector<nlohmann::json> ObjectCache::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<nlohmann::json> out;
  out.reserve(objects_.size());
  for (const auto& [key, obj] : objects_) out.push_back(obj);
  return out;
}

std::vector<std::string> ObjectCache::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, obj] : objects_) out.push_back(key);
  return out;
}

size_t ObjectCache::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

}  // namespace vios::kube
