// DescribeChange: reservation changes as Kubernetes Events (pr_events.h).
#include "node-agent/reservation/pr_events.h"

#include <algorithm>

namespace vios::reservation {
namespace {

std::string Port(const PrPort& port) { return port.InitiatorPort(); }

std::string Reservation(const PrState& s) {
  std::string text = TypeName(s.type) + " reservation";
  if (s.holder.has_value()) {
    text += " held by " + Port(*s.holder);
  } else {
    text += " held by every registrant";
  }
  return text;
}

// Registrations in before whose port has none in after.
std::vector<Registration> Removed(const PrState& before, const PrState& after) {
  std::vector<Registration> out;
  for (const Registration& r : before.registrations) {
    bool kept = std::any_of(after.registrations.begin(), after.registrations.end(),
                            [&](const Registration& a) { return a.port == r.port; });
    if (!kept) {
      out.push_back(r);
    }
  }
  return out;
}

std::string List(const std::vector<Registration>& regs) {
  std::string text;
  for (const Registration& r : regs) {
    text += (text.empty() ? "" : ", ") + Port(r.port) + " (key " + FormatKey(r.key) + ")";
  }
  return text;
}

}  // namespace

std::vector<PrEvent> DescribeChange(const PrState& before, const PrState& after, const PrPort& by,
                                    ProutAction action) {
  std::vector<PrEvent> events;
  const std::string who = Port(by);
  if (action == ProutAction::kClear) {
    std::string note =
        who + " cleared " + std::to_string(before.registrations.size()) + " registration(s)";
    if (before.Reserved()) {
      note += " and the " + Reservation(before);
    }
    events.push_back(PrEvent{true, "RegistrationsCleared", "Clear", note});
    return events;
  }
  if (action == ProutAction::kPreempt || action == ProutAction::kPreemptAndAbort) {
    std::vector<Registration> removed = Removed(before, after);
    std::string note = who + " preempted";
    note += removed.empty() ? " no registration" : " " + List(removed);
    if (after.Reserved() && !(after.type == before.type && after.holder == before.holder)) {
      note += "; now " + Reservation(after);
    }
    if (action == ProutAction::kPreemptAndAbort) {
      note += "; their tasks aborted";
    }
    events.push_back(PrEvent{true, "ReservationPreempted",
                             action == ProutAction::kPreempt ? "Preempt" : "PreemptAndAbort",
                             note});
    return events;
  }
  if (!before.Reserved() && after.Reserved()) {
    events.push_back(
        PrEvent{false, "ReservationTaken", "Reserve", who + " took a " + Reservation(after)});
  } else if (before.Reserved() && !after.Reserved()) {
    const bool released = action == ProutAction::kRelease;
    events.push_back(PrEvent{
        false, "ReservationReleased", released ? "Release" : "Unregister",
        who + (released ? " released the " : " unregistered, ending the ") + Reservation(before)});
  } else if (before.Reserved() && after.Reserved() && !(before.holder == after.holder)) {
    // REGISTER AND MOVE hands the reservation to another port.
    events.push_back(PrEvent{false, "ReservationMoved", "RegisterAndMove",
                             who + " moved the reservation: now " + Reservation(after)});
  }
  return events;
}

}  // namespace vios::reservation
