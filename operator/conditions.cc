// Condition list maintenance (metav1.Condition semantics).
#include "operator/conditions.h"

namespace vios::op {

void SetCondition(nlohmann::json* conditions, const Condition& c, WallTime now) {
  if (!conditions->is_array()) *conditions = nlohmann::json::array();
  nlohmann::json next = {{"type", c.type},
                         {"status", c.status},
                         {"reason", c.reason},
                         {"message", c.message},
                         {"lastTransitionTime", FormatApiTime(now)}};
  if (c.observed_generation) next["observedGeneration"] = *c.observed_generation;
  for (auto& existing : *conditions) {
    if (!existing.is_object() || existing.value("type", "") != c.type) continue;
    if (existing.value("status", "") == c.status && existing.contains("lastTransitionTime")) {
      next["lastTransitionTime"] = existing["lastTransitionTime"];
    }
    existing = std::move(next);
    return;
  }
  conditions->push_back(std::move(next));
}

const nlohmann::json* FindCondition(const nlohmann::json& conditions, const std::string& type) {
  if (!conditions.is_array()) return nullptr;
  for (const auto& c : conditions) {
    if (c.is_object() && c.value("type", "") == type) return &c;
  }
  return nullptr;
}

std::string ConditionStatus(const nlohmann::json& conditions, const std::string& type) {
  const nlohmann::json* c = FindCondition(conditions, type);
  if (c == nullptr || !(*c)["status"].is_string()) return "";
  return (*c)["status"].get<std::string>();
}

}  // namespace vios::op
