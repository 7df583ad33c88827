// metav1.Condition lists in status: set a condition without moving lastTransitionTime when its
// status did not change, so that recomputing an unchanged status yields an identical object and
// the reconciler writes nothing (no flapping, no write amplification).
//
//   nlohmann::json conds = status.value("conditions", nlohmann::json::array());
//   op::SetCondition(&conds, {.type = "Ready", .status = "True", .reason = "MembersUp",
//                             .message = "3 of 3 members Up", .observed_generation = gen}, now);
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "operator/api_time.h"

namespace vios::op {

struct Condition {
  std::string type{};
  std::string status{};  // "True", "False" or "Unknown"
  std::string reason{};  // CamelCase
  std::string message{};
  std::optional<int64_t> observed_generation{};
};

// SetCondition inserts or replaces the condition of c.type in *conditions (a JSON array). The
// lastTransitionTime is now when the status changed (or the condition is new), else kept.
void SetCondition(nlohmann::json* conditions, const Condition& c, WallTime now);

// FindCondition returns the condition of type, or nullptr.
const nlohmann::json* FindCondition(const nlohmann::json& conditions, const std::string& type);

// ConditionStatus returns the status of type ("" if absent).
std::string ConditionStatus(const nlohmann::json& conditions, const std::string& type);

}  // namespace vios::op
