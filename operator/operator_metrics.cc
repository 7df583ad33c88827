// Operator metric families (see operator_metrics.h).
#include "operator/operator_metrics.h"

#include "operator/member_health.h"

namespace vios::op {

OperatorMetrics::OperatorMetrics(metrics::Registry& registry)
    : reconciles_(prometheus::BuildCounter()
                      .Name("vios_operator_reconcile_total")
                      .Help("Reconciles by controller and result")
                      .Register(registry.registry())),
      reconcile_errors_(prometheus::BuildCounter()
                            .Name("vios_operator_reconcile_errors_total")
                            .Help("Reconciles that failed and were retried with backoff")
                            .Register(registry.registry())),
      reconcile_duration_(prometheus::BuildHistogram()
                              .Name("vios_operator_reconcile_duration_seconds")
                              .Help("Time spent in one reconcile")
                              .Register(registry.registry())),
      queue_depth_(prometheus::BuildGauge()
                       .Name("vios_operator_workqueue_depth")
                       .Help("Keys ready to be reconciled")
                       .Register(registry.registry())),
      members_(prometheus::BuildGauge()
                   .Name("vios_operator_members")
                   .Help("VIOSMembers by state, over every watched namespace")
                   .Register(registry.registry())),
      leader_(prometheus::BuildGauge()
                  .Name("vios_operator_leader")
                  .Help("1 while this replica leads and reconciles")
                  .Register(registry.registry())
                  .Add({})),
      transitions_(prometheus::BuildCounter()
                       .Name("vios_operator_member_transitions_total")
                       .Help("Member state transitions by message type")
                       .Register(registry.registry())),
      status_writes_(prometheus::BuildCounter()
                         .Name("vios_operator_status_writes_total")
                         .Help("Status writes by kind (a steady cluster writes none)")
                         .Register(registry.registry())) {
  for (const char* state : {kJoining, kUp, kDown, kLeaving}) members_.Add({{"state", state}});
}

void OperatorMetrics::ReconcileDone(const std::string& controller, const std::string& result,
                                    double seconds) {
  reconciles_.Add({{"controller", controller}, {"result", result}}).Increment();
  if (result == "error") reconcile_errors_.Add({{"controller", controller}}).Increment();
  reconcile_duration_.Add({{"controller", controller}}, metrics::OperationLatencyBuckets())
      .Observe(seconds);
}

void OperatorMetrics::SetQueueDepth(const std::string& controller, double depth) {
  queue_depth_.Add({{"controller", controller}}).Set(depth);
}

void OperatorMetrics::SetMembers(const std::map<std::string, int>& by_state) {
  for (const char* state : {kJoining, kUp, kDown, kLeaving}) {
    auto it = by_state.find(state);
    members_.Add({{"state", state}}).Set(it == by_state.end() ? 0 : it->second);
  }
}

void OperatorMetrics::SetLeader(bool leading) { leader_.Set(leading ? 1 : 0); }

void OperatorMetrics::MemberTransition(const std::string& message_type) {
  transitions_.Add({{"type", message_type}}).Increment();
}

void OperatorMetrics::StatusWrite(const std::string& kind) {
  status_writes_.Add({{"kind", kind}}).Increment();
}

}  // namespace vios::op
