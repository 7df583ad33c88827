// The reconcile loop of one controller (see controller.h).
#include "operator/controller.h"

#include <exception>

#include "common/log/log.h"

namespace vios::op {

Controller::Controller(std::string name, ReconcileFn reconcile, OperatorMetrics* metrics)
    : name_(std::move(name)),
      reconcile_(std::move(reconcile)),
      metrics_(metrics),
      queue_(kube::RateLimiterOptions{.base_delay = std::chrono::milliseconds(50),
                                      .max_delay = std::chrono::seconds(60)}) {}

Controller::~Controller() { Stop(); }

void Controller::Enqueue(const std::string& key) {
  queue_.Add(key);
  UpdateDepth();
}

void Controller::Start(int workers) {
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

void Controller::Stop() {
  queue_.ShutDown();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void Controller::UpdateDepth() {
  if (metrics_ != nullptr) metrics_->SetQueueDepth(name_, static_cast<double>(queue_.Len()));
}

void Controller::Work() {
  while (auto key = queue_.Get()) {
    if (queue_.ShuttingDown()) {
      queue_.Done(*key);
      break;
    }
    UpdateDepth();
    auto start = std::chrono::steady_clock::now();
    std::string result = "success";
    try {
      ReconcileResult r = reconcile_(*key);
      queue_.Forget(*key);
      if (r.requeue_after) {
        queue_.AddAfter(*key, *r.requeue_after);
        result = "requeue";
      }
    } catch (const std::exception& e) {
      result = "error";
      VIOS_LOG(kWarning, "reconcile failed, retrying with backoff")
          .Field("controller", name_)
          .Field("key", *key)
          .Field("retries", queue_.NumRequeues(*key))
          .Field("error", e.what());
      queue_.AddRateLimited(*key);
    }
    queue_.Done(*key);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (metrics_ != nullptr) metrics_->ReconcileDone(name_, result, secs);
  }
}

}  // namespace vios::op
