// VIOSCluster status aggregation (see cluster_status.h).
#include "operator/cluster_status.h"

#include <algorithm>
#include <map>
#include <optional>

#include "common/util/quantity.h"
#include "operator/conditions.h"
#include "operator/member_health.h"

namespace vios::op {
namespace {

using nlohmann::json;

const json& Sub(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string Str(const json& obj, const char* key) {
  const json& v = Sub(obj, key);
  return v.is_string() ? v.get<std::string>() : "";
}

int64_t Int(const json& obj, const char* key) {
  const json& v = Sub(obj, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

std::string StateOf(const json& member) {
  std::string s = Str(Sub(member, "status"), "state");
  return s.empty() ? kJoining : s;
}

// JoinBounded lists up to 5 names, then "and N more": messages stay short and stable.
std::string JoinBounded(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 5) s += " and " + std::to_string(names.size() - 5) + " more";
  return s;
}

json PoolStatus(const json& pool, const std::vector<json>& volumes, const std::vector<json>& up,
                uint64_t* free_total, std::vector<std::string>* unhealthy) {
  const std::string name = Str(pool, "name");
  uint64_t capacity = 0;
  bool capacity_known = true;
  json backends = json::array();
  const json& specs = Sub(pool, "backends");
  for (const json& b : specs.is_array() ? specs : json::array()) {
    const std::string bname = Str(b, "name");
    if (const json& f = Sub(b, "file"); f.is_object()) {
      capacity += util::ParseByteQuantity(Str(f, "size")).value_or(0);
    } else {
      capacity_known = false;  // LUN and device sizes are learned by agents, not in the spec
    }
    // Health: how many Up members report a Healthy path to this backend.
    int64_t reporting = 0, healthy = 0;
    for (const json& m : up) {
      const json& paths = Sub(Sub(m, "status"), "paths");
      for (const json& p : paths.is_array() ? paths : json::array()) {
        if (Str(p, "pool") != name || Str(p, "backend") != bname) continue;
        ++reporting;
        if (Str(p, "state") == "Healthy") ++healthy;
      }
    }
    json bs = {{"name", bname}, {"membersWithPath", healthy}};
    if (reporting > 0) {
      std::string health = healthy == static_cast<int64_t>(up.size()) ? "Healthy"
                           : healthy > 0                              ? "Degraded"
                                                                      : "Lost";
      bs["health"] = health;
      if (health != "Healthy") unhealthy->push_back(name + "/" + bname + " " + health);
    }
    backends.push_back(std::move(bs));
  }
  uint64_t allocated = 0;
  for (const json& v : volumes) {
    if (Str(Sub(v, "spec"), "pool") != name) continue;
    const json& extents = Sub(Sub(v, "spec"), "extents");
    for (const json& e : extents.is_array() ? extents : json::array()) {
      const json& len = Sub(e, "length");
      if (len.is_number_integer() && len.get<int64_t>() > 0) {
        allocated += static_cast<uint64_t>(len.get<int64_t>());
      }
    }
  }
  uint64_t free = capacity > allocated ? capacity - allocated : 0;
  *free_total += free;
  json out = {{"name", name},
              {"allocated", util::FormatByteQuantity(allocated)},
              {"backends", std::move(backends)}};
  if (capacity_known) {
    out["capacity"] = util::FormatByteQuantity(capacity);
    out["free"] = util::FormatByteQuantity(free);
  }
  return out;
}

// DaemonSetProgress returns a reason and message while the node DaemonSet is not rolled out.
std::optional<std::pair<std::string, std::string>> DaemonSetProgress(const json* ds) {
  if (ds == nullptr) return std::make_pair("DaemonSetMissing", "node DaemonSet not created yet");
  const json& status = Sub(*ds, "status");
  const int64_t generation = Int(Sub(*ds, "metadata"), "generation");
  if (Int(status, "observedGeneration") < generation) {
    return std::make_pair("DaemonSetPending", "node DaemonSet generation " +
                                                  std::to_string(generation) +
                                                  " not yet observed by its controller");
  }
  const int64_t desired = Int(status, "desiredNumberScheduled");
  const int64_t updated = Int(status, "updatedNumberScheduled");
  const int64_t available = Int(status, "numberAvailable");
  if (updated < desired || available < desired) {
    return std::make_pair("DaemonSetRollingOut",
                          std::to_string(updated) + " of " + std::to_string(desired) +
                              " agent pods updated, " + std::to_string(available) + " available");
  }
  return std::nullopt;
}

}  // namespace

json ComputeClusterStatus(const ClusterStatusInput& in) {
  const json& old = Sub(in.cluster, "status");
  const int64_t generation = Int(Sub(in.cluster, "metadata"), "generation");
  json status = json::object();
  status["observedGeneration"] = generation;

  // Members: counts over all, summary bounded and sorted by name so its order is stable.
  std::vector<const json*> sorted;
  for (const json& m : in.members) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
    return Str(Sub(*a, "metadata"), "name") < Str(Sub(*b, "metadata"), "name");
  });
  std::vector<json> up;
  std::vector<std::string> down, joining;
  json summary = json::array();
  for (const json* m : sorted) {
    const std::string name = Str(Sub(*m, "metadata"), "name");
    const std::string state = StateOf(*m);
    if (state == kUp) up.push_back(*m);
    if (state == kDown) down.push_back(name);
    if (state == kJoining) joining.push_back(name);
    if (summary.size() < kMaxMemberSummary) {
      summary.push_back(
          {{"name", name}, {"node", Str(Sub(*m, "spec"), "nodeName")}, {"state", state}});
    }
  }
  status["memberCount"] = static_cast<int64_t>(in.members.size());
  status["membersUp"] = static_cast<int64_t>(up.size());
  status["members"] = std::move(summary);

  // Pools.
  uint64_t free_total = 0;
  std::vector<std::string> unhealthy;
  json pools = json::array();
  const json& pool_specs = Sub(Sub(in.cluster, "spec"), "pools");
  for (const json& p : pool_specs.is_array() ? pool_specs : json::array()) {
    pools.push_back(PoolStatus(p, in.volumes, up, &free_total, &unhealthy));
  }
  status["poolCount"] = static_cast<int64_t>(pools.size());
  status["free"] = util::FormatByteQuantity(free_total);
  status["pools"] = std::move(pools);

  // Conditions, based on the stored ones so that lastTransitionTime survives.
  json conditions = Sub(old, "conditions").is_array() ? Sub(old, "conditions") : json::array();
  const size_t total = in.members.size();
  Condition ready{.type = "Ready", .observed_generation = generation};
  if (!in.problems.empty()) {
    ready.status = "False";
    ready.reason = "InvalidSpec";
    ready.message = FormatProblems(in.problems);
  } else if (up.empty()) {
    ready.status = "False";
    ready.reason = "NoMemberUp";
    ready.message = "no member Up (" + std::to_string(total) + " registered)";
  } else {
    ready.status = "True";
    ready.reason = "MembersUp";
    ready.message = std::to_string(up.size()) + " of " + std::to_string(total) + " members Up";
  }
  SetCondition(&conditions, ready, in.now);

  Condition degraded{.type = "Degraded", .observed_generation = generation};
  if (!down.empty() || !unhealthy.empty()) {
    degraded.status = "True";
    degraded.reason = !down.empty() ? "MembersDown" : "BackendPathsUnhealthy";
    std::string msg;
    if (!down.empty()) msg = "members Down: " + JoinBounded(down);
    if (!unhealthy.empty())
      msg += (msg.empty() ? "" : "; ") + ("backends " + JoinBounded(unhealthy));
    degraded.message = msg;
  } else {
    degraded.status = "False";
    degraded.reason = "AsExpected";
    degraded.message = "all members Up and all backend paths healthy";
  }
  SetCondition(&conditions, degraded, in.now);

  Condition progressing{.type = "Progressing", .observed_generation = generation};
  auto rollout = in.problems.empty() ? DaemonSetProgress(in.daemonset) : std::nullopt;
  if (rollout) {
    progressing.status = "True";
    progressing.reason = rollout->first;
    progressing.message = rollout->second;
  } else if (!joining.empty()) {
    progressing.status = "True";
    progressing.reason = "MembersJoining";
    progressing.message = "members Joining: " + JoinBounded(joining);
  } else {
    progressing.status = "False";
    progressing.reason = in.problems.empty() ? "Stable" : "InvalidSpec";
    progressing.message = in.problems.empty() ? "node DaemonSet rolled out, no member joining"
                                              : "waiting for a valid spec";
  }
  SetCondition(&conditions, progressing, in.now);
  status["conditions"] = std::move(conditions);
  return status;
}

bool StatusEqual(const json& a, const json& b) { return a == b; }

}  // namespace vios::op
