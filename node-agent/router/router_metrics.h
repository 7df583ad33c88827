// RouterMetrics: the reroute metrics of every backend's Router and of the peer server, built at
// scrape time from counters the data path keeps itself (nothing runs per I/O; DESIGN.md §9).
// The names are a contract with the Helm chart's alerts and dashboard: do not rename.
//
// Families:
//   vios_path_health{pool,backend,path,state}      gauge, 1 for the current state, 0 otherwise;
//                                                  path "local" | "peer:<member>",
//                                                  state healthy | degraded | lost
//   vios_rerouted{pool,backend}                    gauge, 1 while I/O is rerouted through peers
//   vios_reroutes_total{pool,backend,reason}       reason io_error | io_timeout | probe | other
//   vios_rerouted_seconds_total{pool,backend}      time spent rerouted
//   vios_peer_io_operations_total{pool,backend,peer,op}  op read | write | other
//   vios_peer_io_bytes_total{pool,backend,peer,op}       op read | write
//   vios_peer_io_latency_seconds{pool,backend,peer}      histogram, all operations
//   vios_peer_io_served_total{from}                I/O this agent executed for peer <from>
//   vios_path_probes_total{pool,backend,result}    result success | failure | timeout
//
//   auto metrics = std::make_shared<RouterMetrics>();
//   metrics->AddRouter("default", "san0", router);          // before the router is destroyed:
//   metrics->SetServedSource([&] { return peer_server.GetStats().io_served; });
//   exposer->ExposeCollectable(metrics);                     // RemoveRouter("default", "san0")
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/router/router.h"

namespace vios::router {

class RouterMetrics final : public prometheus::Collectable {
 public:
  // AddRouter registers a backend's router; RemoveRouter must run before the router dies.
  void AddRouter(std::string pool, std::string backend, const Router* router);
  void RemoveRouter(const std::string& pool, const std::string& backend);
  // SetServedSource gives the peer server's per-caller ExecuteIo counts (PeerServer::GetStats).
  void SetServedSource(std::function<std::map<std::string, uint64_t>()> served);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Source {
    std::string pool;
    std::string backend;
    const Router* router;
  };
  mutable std::mutex mu_;
  std::vector<Source> routers_;                              // guarded by mu_
  std::function<std::map<std::string, uint64_t>()> served_;  // guarded by mu_
};

}  // namespace vios::router
