// Informer: keeps a local, thread-safe copy of one resource (list, then watch) and tells handlers
// about every change. It survives API server restarts (reconnects with backoff and resumes from
// the last resourceVersion) and expired histories (410: re-lists and synthesizes deletes for
// objects that vanished meanwhile).
//
//   kube::Informer volumes(client, kube::resources::kVIOSVolumes, "vios-system");
//   volumes.AddHandler({.on_add = [&](const json& o) { queue.Add(kube::KeyOf(o)); },
//                       .on_update = [&](const json&, const json& o) { queue.Add(kube::KeyOf(o));
//                       }, .on_delete = [&](const json& o) { queue.Add(kube::KeyOf(o)); }});
//   volumes.Start();
//   volumes.WaitForSync(std::chrono::seconds(30));
//
// Handlers run one at a time on the informer's threads; keep them short (enqueue a key).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/kube/cache.h"
#include "common/kube/client.h"
#include "common/kube/watch.h"

namespace vios::kube {

// ResourceEventHandler: any member may be empty.
struct ResourceEventHandler {
  std::function<void(const nlohmann::json& obj)> on_add;
  // on_update also fires on resync with old == current.
  std::function<void(const nlohmann::json& old_obj, const nlohmann::json& obj)> on_update;
  std::function<void(const nlohmann::json& last_known)> on_delete;
};

struct InformerOptions {
  std::string label_selector;
  std::string field_selector;
  // resync_period > 0 re-delivers every cached object as an update this often, so a reconciler
  // that missed something (or whose side effects were undone) looks again.
  std::chrono::milliseconds resync_period{0};
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(10)};
  int64_t watch_timeout_seconds = 300;
  int64_t page_size = 500;
};

class Informer {
 public:
  Informer(Client& client, ResourceRef ref, std::string ns, InformerOptions options = {});
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // AddHandler registers h; added after the first sync, it first gets an add for every object.
  void AddHandler(ResourceEventHandler h);
  // Start launches the list/watch thread (and the resync thread when configured).
  void Start();
  // Stop ends the watch, joins the threads; handlers are not called after it returns.
  void Stop();

  // HasSynced is true once the first list has been delivered to handlers.
  bool HasSynced() const { return synced_.load(); }
  bool WaitForSync(std::chrono::milliseconds timeout) const;

  std::optional<nlohmann::json> Get(const std::string& ns, const std::string& name) const;
  std::optional<nlohmann::json> GetByKey(const std::string& key) const { return cache_.Get(key); }
  std::vector<nlohmann::json> List() const { return cache_.List(); }

  // Counters for tests and metrics.
  uint64_t lists() const { return lists_.load(); }
  uint64_t watch_failures() const { return watch_failures_.load(); }

 private:
  void Run();
  void ResyncLoop();
  void ListOnce(std::string* resource_version);
  void Dispatch(const Delta& delta);
  // Sleep waits up to d; false if Stop was called.
  bool Sleep(std::chrono::milliseconds d);

  Client& client_;
  const ResourceRef ref_;
  const std::string ns_;
  const InformerOptions options_;
  ObjectCache cache_;

  std::mutex handlers_mu_;  // held while a handler runs: handlers are serialized
  std::vector<ResourceEventHandler> handlers_;

  mutable std::mutex mu_;  // guards watcher_ and stopping_ for Stop()
  mutable std::condition_variable cv_;
  std::unique_ptr<Watcher> watcher_;
  bool stopping_ = false;

  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> lists_{0};
  std::atomic<uint64_t> watch_failures_{0};
  std::thread thread_;
  std::thread resync_thread_;
};

}  // namespace vios::kube
