// Listeners on the operator's event bus for member transitions (MemberJoined, MemberDown,
// MemberUp): one bridges to Kubernetes Events on the VIOSMember, one to structured logs, one to
// metrics (DESIGN.md §5: handlers act, listeners observe).
//
//   events::EventBus bus;
//   RegisterMemberListeners(bus, &recorder, &metrics);
//   bus.Publish(MemberMessage(events::MessageType::kMemberDown, member, "lease expired"));
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/events/event_bus.h"
#include "common/kube/event_recorder.h"
#include "operator/operator_metrics.h"

namespace vios::op {

// MemberMessage builds the bus message for a member transition; the attributes carry what the
// Kubernetes Event needs to name the object.
events::Message MemberMessage(events::MessageType type, const nlohmann::json& member,
                              const std::string& text);

// RegisterMemberListeners registers the Events, log and metrics listeners. recorder or metrics
// may be null (then that listener is not registered).
void RegisterMemberListeners(events::EventBus& bus, kube::EventRecorder* recorder,
                             OperatorMetrics* metrics);

}  // namespace vios::op
