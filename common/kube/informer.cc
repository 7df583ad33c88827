// Informer: the list/watch loop, reconnection and re-list rules, resync.
#include "common/kube/informer.h"

#include "common/log/log.h"

namespace vios::kube {

Informer::Informer(Client& client, ResourceRef ref, std::string ns, InformerOptions options)
    : client_(client), ref_(std::move(ref)), ns_(std::move(ns)), options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandler(ResourceEventHandler h) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (synced_.load() && h.on_add) {
    for (const auto& obj : cache_.List()) h.on_add(obj);
  }
  handlers_.push_back(std::move(h));
}

void Informer::Start() {
  thread_ = std::thread([this] { Run(); });
  if (options_.resync_period.count() > 0) {
    resync_thread_ = std::thread([this] { ResyncLoop(); });
  }
}

void Informer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (watcher_) watcher_->Stop();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (resync_thread_.joinable()) resync_thread_.join();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return synced_.load() || stopping_; }) &&
         synced_.load();
}

std::optional<nlohmann::json> Informer::Get(const std::string& ns, const std::string& name) const {
  return cache_.Get(ns.empty() ? name : ns + "/" + name);
}

bool Informer::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void Informer::Dispatch(const Delta& delta) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  for (const ResourceEventHandler& h : handlers_) {
    try {
      switch (delta.type) {
        case Delta::Type::kAdded:
          if (h.on_add) h.on_add(delta.object);
          break;
        case Delta::Type::kUpdated:
          if (h.on_update) h.on_update(delta.old_object, delta.object);
          break;
        case Delta::Type::kDeleted:
          if (h.on_delete) h.on_delete(delta.old_object);
          break;
      }
    } catch (const std::exception& e) {
      VIOS_LOG(kError, "informer handler threw")
          .Field("resource", ref_.resource)
          .Field("error", e.what());
    }
  }
}

void Informer::ListOnce(std::string* resource_version) {
  ListOptions list_options;
  list_options.label_selector = options_.label_selector;
  list_options.field_selector = options_.field_selector;
  ListResult list = client_.ListAll(ref_, ns_, list_options, options_.page_size);
  for (const Delta& d : cache_.Replace(list.items)) Dispatch(d);
  *resource_version = list.resource_version;
  lists_++;
  if (!synced_.exchange(true)) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
}

void Informer::Run() {
  bool need_list = true;
  std::string resource_version;
  int failures = 0;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    Watcher* watcher = nullptr;
    try {
      if (need_list) {
        ListOnce(&resource_version);
        need_list = false;
      }
      WatchOptions watch_options;
      watch_options.resource_version = resource_version;
      watch_options.label_selector = options_.label_selector;
      watch_options.field_selector = options_.field_selector;
      watch_options.allow_bookmarks = true;
      watch_options.timeout_seconds = options_.watch_timeout_seconds;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        watcher_ = std::make_unique<Watcher>(client_, ref_, ns_, watch_options);
        watcher = watcher_.get();
      }
      watcher->Run([&](const WatchEvent& event) {
        if (auto delta = cache_.Apply(event)) Dispatch(*delta);
        failures = 0;  // the connection delivers: a later failure starts backing off afresh
      });
      resource_version = watcher->last_resource_version();  // the server ended the window
    } catch (const ApiError& e) {
      if (watcher != nullptr) resource_version = watcher->last_resource_version();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      watch_failures_++;
      if (e.kind() == ErrorKind::kExpired) {
        // Our resourceVersion fell out of the server's history (etcd compaction): events are
        // lost, only a fresh list tells what exists now.
        VIOS_LOG(kInfo, "watch expired, re-listing").Field("resource", ref_.resource);
        need_list = true;
        continue;
      }
      auto delay =
          Backoff(RetryPolicy{0, options_.initial_backoff, options_.max_backoff}, failures++);
      VIOS_LOG(kWarning, "list/watch failed, retrying")
          .Field("resource", ref_.resource)
          .Field("error", e.what())
          .Field("delay_ms", static_cast<int64_t>(delay.count()));
      if (!Sleep(delay)) return;
    }
  }
}

void Informer::ResyncLoop() {
  while (Sleep(options_.resync_period)) {
    if (!synced_.load()) continue;
    for (const auto& obj : cache_.List()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      Dispatch({Delta::Type::kUpdated, obj, obj});
    }
  }
}

}  // namespace vios::kube
