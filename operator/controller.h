// Controller: one work queue and its workers, calling a level-based reconcile function with a
// key ("namespace/name"). The reconcile reads the actual state from caches and returns when to
// look again; exceptions mean "retry with backoff" (STYLE.md: controller-runtime's model).
//
//   Controller members("viosmember", [&](const std::string& key) { return r.Reconcile(key); },
//                      &metrics);
//   informer.AddHandler({.on_add = [&](const json& o) { members.Enqueue(kube::KeyOf(o)); }});
//   members.Start(2);   // once leading
//   members.Stop();
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/kube/work_queue.h"
#include "operator/operator_metrics.h"

namespace vios::op {

struct ReconcileResult {
  std::optional<std::chrono::milliseconds> requeue_after{};
};

using ReconcileFn = std::function<ReconcileResult(const std::string& key)>;

class Controller {
 public:
  Controller(std::string name, ReconcileFn reconcile, OperatorMetrics* metrics);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  const std::string& name() const { return name_; }
  // Enqueue queues key (deduplicated). Keys queued before Start wait for it.
  void Enqueue(const std::string& key);
  // Start launches workers; Stop shuts the queue down and joins them (not restartable: a replica
  // that loses leadership exits and starts afresh).
  void Start(int workers);
  void Stop();
  size_t Depth() const { return queue_.Len(); }

 private:
  void Work();
  void UpdateDepth();

  const std::string name_;
  ReconcileFn reconcile_;
  OperatorMetrics* metrics_;
  kube::RateLimitingQueue queue_;
  std::vector<std::thread> workers_;
};

}  // namespace vios::op
