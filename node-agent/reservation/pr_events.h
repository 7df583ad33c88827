// Kubernetes Events for reservation changes (DESIGN.md §9: Events on the objects they concern;
// issue #8: preemptions, reservations taken and released, registrations cleared).
//
// The agent that EXECUTES a PR OUT describes what it changed and hands the Events to its store
// (PrStateStore::PostEvents); the cluster store posts them on the VIOSVolume, so each change is
// reported once, by one agent, however many agents serve the volume. Peers applying the update
// post nothing. Repeats (a fencing loop preempting the same key again and again) are aggregated
// by kube::EventRecorder into one Event with a count.
//
//   std::vector<PrEvent> events = DescribeChange(before, after, PrPort::FromNexus(nexus), action);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_state.h"

namespace vios::reservation {

struct PrEvent {
  bool warning = false;
  std::string reason;  // UpperCamelCase, e.g. "ReservationPreempted"
  std::string action;  // what was done, e.g. "Preempt"
  std::string note;    // human-readable, names the ports and the reservation type
  bool operator==(const PrEvent&) const = default;
};

// DescribeChange: the Events for one committed PERSISTENT RESERVE OUT (service action `action`,
// SPC-4 §6.16.1) issued by `by` that turned `before` into `after`. Registrations made or changed
// by REGISTER get none (routine, and fence agents re-register often); preemptions, CLEAR and
// reservations taken or released do.
std::vector<PrEvent> DescribeChange(const PrState& before, const PrState& after, const PrPort& by,
                                    ProutAction action);

}  // namespace vios::reservation
