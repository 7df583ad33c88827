// PoolMetrics (see pool_metrics.h).
#include "csi-driver/pool_metrics.h"

#include "common/log/log.h"

namespace vios::csi {

PoolMetrics::PoolMetrics(metrics::Registry& registry, kube::Client& client, std::string ns,
                         std::string cluster)
    : client_(client),
      ns_(std::move(ns)),
      cluster_(std::move(cluster)),
      allocator_(client, ns_),
      capacity_(prometheus::BuildGauge()
                    .Name("vios_pool_capacity_bytes")
                    .Help("Bytes of the pool the CSI controller can allocate (whole extents)")
                    .Register(registry.registry())),
      allocated_(prometheus::BuildGauge()
                     .Name("vios_pool_allocated_bytes")
                     .Help("Bytes of the pool held by volumes and pending reservations")
                     .Register(registry.registry())) {}

PoolMetrics::~PoolMetrics() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PoolMetrics::Start(std::chrono::milliseconds interval) {
  thread_ = std::thread([this, interval] { Loop(interval); });
}

void PoolMetrics::Changed() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    changed_ = true;
  }
  cv_.notify_all();
}

void PoolMetrics::Loop(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    lock.unlock();
    Refresh();
    lock.lock();
    cv_.wait_for(lock, interval, [this] { return stop_ || changed_; });
    changed_ = false;
  }
}

bool PoolMetrics::Refresh() {
  if (cluster_.empty()) return false;
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  try {
    nlohmann::json cluster = client_.Get(kube::resources::kVIOSClusters, ns_, cluster_);
    std::set<std::string> seen;
    for (const auto& pool : PoolSpec::AllFromCluster(cluster)) {
      const uint64_t capacity = pool.CapacityBytes();
      const uint64_t free = allocator_.FreeBytes(pool);
      capacity_.Add({{"pool", pool.name}}).Set(static_cast<double>(capacity));
      allocated_.Add({{"pool", pool.name}})
          .Set(static_cast<double>(capacity > free ? capacity - free : 0));
      seen.insert(pool.name);
    }
    // A pool removed from the cluster stops being reported rather than showing stale numbers.
    for (const auto& name : pools_) {
      if (seen.count(name)) continue;
      capacity_.Remove(&capacity_.Add({{"pool", name}}));
      allocated_.Remove(&allocated_.Add({{"pool", name}}));
    }
    pools_ = std::move(seen);
    return true;
  } catch (const std::exception& e) {
    VIOS_LOG(kWarning, "pool metrics not refreshed")
        .Field("cluster", cluster_)
        .Field("error", e.what());
    return false;
  }
}

}  // namespace vios::csi
