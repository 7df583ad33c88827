// PrCollector: exports the reservation policies' counters (PrCounters) to Prometheus at scrape
// time; the command path only bumps atomics (DESIGN.md §9).
//
// Families (names fixed: the alerts use them):
//   vios_pr_operations_total{volume,service_action}  PR OUT commands by service action:
//       register, reserve, release, clear, preempt, preempt_and_abort,
//       register_and_ignore_existing_key, register_and_move, invalid
//   vios_pr_conflicts_total{volume}        RESERVATION CONFLICT answers (I/O and PR commands)
//   vios_pr_preemptions_total{volume}      PREEMPT / PREEMPT AND ABORT that removed registrations
//   vios_pr_notify_latency_seconds         histogram: NotifyAll duration, all volumes
//   vios_pr_store_errors_total{volume}     store reads/writes that failed (API server unreachable)
//   vios_pr_store_conflicts_total{volume}  store writes that lost a race with another agent
//
//   auto collector = std::make_shared<reservation::PrCollector>();
//   registry.ExposeCollectable(collector);
//   collector->Add(volume_id, policy);      // policy: shared_ptr<LocalPersistentReservations>
//   collector->Remove(volume_id);
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/reservation/local_persistent_reservations.h"

namespace vios::reservation {

// ServiceActionName: the service_action label value of PrCounters::prout_by_action[index].
const char* ServiceActionName(size_t index);

class PrCollector final : public prometheus::Collectable {
 public:
  // Add registers a volume's policy (kept alive while registered); a second Add of the same
  // volume replaces the first.
  void Add(std::string volume, std::shared_ptr<const LocalPersistentReservations> policy);
  void Remove(const std::string& volume);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Source {
    std::string volume;
    std::shared_ptr<const LocalPersistentReservations> policy;
  };
  mutable std::mutex mu_;
  std::vector<Source> sources_;  // Guarded by mu_.
};

}  // namespace vios::reservation
