// PoolMetrics: the controller's view of pool usage as Prometheus gauges (DESIGN.md §9):
//
//   vios_pool_capacity_bytes{pool}   bytes the controller can allocate (whole extents of the
//                                    backends whose size it knows)
//   vios_pool_allocated_bytes{pool}  bytes held by VIOSVolumes and uncommitted reservations
//
// The alerting rules use exactly these names and the one label. The values come from the API
// server (the VIOSCluster of --cluster, its VIOSVolumes and allocation ConfigMaps), so every
// controller replica reports the same numbers. A background thread refreshes them every
// `interval` and soon after Changed() (called after CreateVolume, DeleteVolume and expansion), so a
// scrape never waits for the API server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include "common/kube/client.h"
#include "common/metrics/metrics.h"
#include "csi-driver/allocator.h"

namespace vios::csi {

class PoolMetrics {
 public:
  PoolMetrics(metrics::Registry& registry, kube::Client& client, std::string ns,
              std::string cluster);
  ~PoolMetrics();
  PoolMetrics(const PoolMetrics&) = delete;
  PoolMetrics& operator=(const PoolMetrics&) = delete;

  // Start runs the refresh thread (no thread without it: tests call Refresh themselves).
  void Start(std::chrono::milliseconds interval);
  // Changed asks for a refresh soon (coalesced: many changes, one refresh).
  void Changed();
  // Refresh reads the cluster and sets the gauges now; false (logged) when the API server or the
  // VIOSCluster cannot be read, in which case the last values stay.
  bool Refresh();

 private:
  void Loop(std::chrono::milliseconds interval);

  kube::Client& client_;
  std::string ns_;
  std::string cluster_;
  PoolAllocator allocator_;
  prometheus::Family<prometheus::Gauge>& capacity_;
  prometheus::Family<prometheus::Gauge>& allocated_;
  std::set<std::string> pools_;  // pools with gauges; guarded by refresh_mutex_

  std::mutex refresh_mutex_;  // one Refresh at a time
  std::mutex mutex_;
  std::condition_variable cv_;
  bool changed_ = false;  // guarded by mutex_
  bool stop_ = false;     // guarded by mutex_
  std::thread thread_;
};

}  // namespace vios::csi
