// Kubernetes wall-clock timestamps: metav1.Time ("2026-11-25T21:49:03Z") and metav1.MicroTime
// ("2026-11-25T21:49:03.123456Z"), parsed into and formatted from system_clock time points.
//
//   auto renew = op::ParseApiTimeField(lease["spec"]["renewTime"]);   // nullopt if absent or
//   garbage status["lastTransitionTime"] = op::FormatApiTime(now);
//
// The reconcilers take "now" as a parameter (an injected wall clock) so that their decisions are
// pure functions of their inputs and testable without sleeping.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vios::op {

using WallTime = std::chrono::system_clock::time_point;
// WallClock returns the current wall time; tests inject a fake.
using WallClock = std::function<WallTime()>;

// SystemWallClock is std::chrono::system_clock::now.
WallClock SystemWallClock();

// ParseApiTime accepts RFC 3339 times with an optional fraction (up to nanoseconds) and a "Z" or
// "+hh:mm" offset. Returns nullopt for anything else (input comes from the API server and from
// agents: never trust it).
std::optional<WallTime> ParseApiTime(std::string_view text);
// ParseApiTimeField: ParseApiTime on a JSON value: nullopt unless it is a parseable string.
std::optional<WallTime> ParseApiTimeField(const nlohmann::json& value);

// FormatApiTime renders metav1.Time (whole seconds, UTC).
std::string FormatApiTime(WallTime t);
// FormatMicroTime renders metav1.MicroTime (microseconds, UTC), as Leases use.
std::string FormatMicroTime(WallTime t);

}  // namespace vios::op
