// DataPathCollector: exports the data path's lock-free counters (backend::IoCounters of logical
// units, volumes and backends; iscsi::TargetCounters of virtual ports) to Prometheus at scrape
// time. The data path only bumps atomics; nothing here runs per I/O (DESIGN.md §4, §9).
//
// Families:
//   vios_io_operations_total{scope,name,op}   op: read|write|other
//   vios_io_bytes_total{scope,name,op}        op: read|write
//   vios_io_errors_total{scope,name}
//   vios_io_latency_seconds{scope,name}       histogram over all operations
//   vios_port_sessions{port}                  gauge
//   vios_port_logins_total{port,result}       result: success|failure
//   vios_port_protocol_errors_total{port}
// scope is "volume" or "backend"; names are configured object names (bounded).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/backend/io_counters.h"
#include "node-agent/iscsi/target.h"

namespace vios::agent {

class DataPathCollector final : public prometheus::Collectable {
 public:
  // AddIo registers counters under (scope, name); `owner` keeps them alive while registered.
  void AddIo(std::string scope, std::string name, const backend::IoCounters* counters,
             std::shared_ptr<const void> owner);
  // AddPort registers a virtual port's target counters.
  void AddPort(std::shared_ptr<iscsi::Target> target);
  // Remove drops every source registered under name (a deleted port or volume).
  void Remove(const std::string& name);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct IoSource {
    std::string scope;
    std::string name;
    const backend::IoCounters* counters;
    std::shared_ptr<const void> owner;
  };
  mutable std::mutex mu_;
  std::vector<IoSource> io_;                           // Guarded by mu_.
  std::vector<std::shared_ptr<iscsi::Target>> ports_;  // Guarded by mu_.
};

}  // namespace vios::agent
