// The operator's Prometheus metrics, declared together (STYLE.md §11). Labels are bounded:
// controller names, results, member states and message types are fixed sets.
//
//   OperatorMetrics m(registry);
//   m.ReconcileDone("viosmember", "success", seconds);
//   m.SetMembers({{"Up", 3}, {"Down", 1}});
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <map>
#include <string>

#include "common/metrics/metrics.h"

namespace vios::op {

class OperatorMetrics {
 public:
  explicit OperatorMetrics(metrics::Registry& registry);

  // ReconcileDone counts one reconcile: result is "success", "requeue" or "error".
  void ReconcileDone(const std::string& controller, const std::string& result, double seconds);
  void SetQueueDepth(const std::string& controller, double depth);
  // SetMembers sets the member count of every known state (absent states are set to 0).
  void SetMembers(const std::map<std::string, int>& by_state);
  void SetLeader(bool leading);
  void MemberTransition(const std::string& message_type);
  void StatusWrite(const std::string& kind);

 private:
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Family<prometheus::Counter>& reconcile_errors_;
  prometheus::Family<prometheus::Histogram>& reconcile_duration_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& members_;
  prometheus::Gauge& leader_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Family<prometheus::Counter>& status_writes_;
};

}  // namespace vios::op
