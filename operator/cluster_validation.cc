// VIOSCluster semantic validation (see cluster_validation.h).
#include "operator/cluster_validation.h"

#include <map>

#include "common/util/quantity.h"

namespace vios::op {
namespace {

using nlohmann::json;

std::string BackendPath(size_t pool, size_t backend) {
  return "spec.pools[" + std::to_string(pool) + "].backends[" + std::to_string(backend) + "]";
}

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

std::string NameOf(const json& obj) { return Str(Sub(obj, "metadata"), "name"); }
std::string NamespaceOf(const json& obj) { return Str(Sub(obj, "metadata"), "namespace"); }
std::string KeyOf(const json& obj) { return NamespaceOf(obj) + "/" + NameOf(obj); }

// StorageIdentity names the storage a backend points at, so that two backends on the same
// storage (which would hand out the same bytes twice) are caught.
std::string StorageIdentity(const json& backend) {
  if (const json& f = Sub(backend, "file"); f.is_object()) return "file:" + Str(f, "path");
  if (const json& d = Sub(backend, "device"); d.is_object()) return "device:" + Str(d, "path");
  if (const json& i = Sub(backend, "iscsi"); i.is_object()) {
    const json& lun = Sub(i, "lun");
    return "iscsi:" + Str(i, "portal") + "/" + Str(i, "iqn") + "/" +
           std::to_string(lun.is_number_integer() ? lun.get<int64_t>() : 0);
  }
  return "";
}

void CheckChapSecret(const json& cluster, const json& iscsi, const std::string& field,
                     const ValidationContext& ctx, std::vector<FieldProblem>* out) {
  const json& ref = Sub(iscsi, "chapSecretRef");
  if (!ref.is_object()) return;
  std::string ns = Str(ref, "namespace");
  if (ns.empty()) ns = NamespaceOf(cluster);
  const std::string name = Str(ref, "name");
  const std::string ref_field = field + ".iscsi.chapSecretRef.name";
  std::optional<json> secret = ctx.secret ? ctx.secret(ns, name) : std::nullopt;
  if (!secret) {
    out->push_back({ref_field, "Secret " + ns + "/" + name + " not found", true});
    return;
  }
  const json& data = Sub(*secret, "data");
  for (const char* key : {"username", "password"}) {
    if (!data.is_object() || !data.contains(key)) {
      out->push_back({ref_field, "Secret " + ns + "/" + name + " has no key " + key, true});
    }
  }
  if (data.is_object() && data.contains("usernameIn") != data.contains("passwordIn")) {
    out->push_back({ref_field,
                    "Secret " + ns + "/" + name +
                        " must have both usernameIn and passwordIn "
                        "for mutual CHAP, or neither",
                    true});
  }
}

}  // namespace

std::pair<int64_t, int64_t> PortRange(const json& cluster) {
  const json& range = Sub(Sub(Sub(cluster, "spec"), "virtualPorts"), "portRange");
  int64_t lo = 3260, hi = 3299;
  if (const json& v = Sub(range, "min"); v.is_number_integer()) lo = v.get<int64_t>();
  if (const json& v = Sub(range, "max"); v.is_number_integer()) hi = v.get<int64_t>();
  return {lo, hi};
}

std::vector<FieldProblem> ValidateClusterSpec(const json& cluster, const ValidationContext& ctx) {
  std::vector<FieldProblem> out;
  const json& spec = Sub(cluster, "spec");
  const json& pools = Sub(spec, "pools");
  if (!pools.is_array() || pools.empty()) {
    out.push_back({"spec.pools", "at least one pool is required"});
    return out;
  }

  // Backend checks, and the index used to resolve volume references below.
  std::map<std::string, std::string> storage_seen;  // identity -> field that claimed it first
  std::map<std::string, size_t> pool_index;
  std::map<std::pair<std::string, std::string>, std::pair<size_t, size_t>> backend_index;
  for (size_t i = 0; i < pools.size(); ++i) {
    const json& pool = pools[i];
    const std::string pool_name = Str(pool, "name");
    pool_index[pool_name] = i;
    std::optional<uint64_t> extent =
        util::ParseByteQuantity(Str(pool, "extentSize").empty() ? "64Mi" : Str(pool, "extentSize"));
    if (!extent) {
      out.push_back({"spec.pools[" + std::to_string(i) + "].extentSize",
                     "not a whole byte quantity this operator understands"});
    }
    const json& backends = Sub(pool, "backends");
    if (!backends.is_array()) continue;
    for (size_t j = 0; j < backends.size(); ++j) {
      const json& b = backends[j];
      const std::string field = BackendPath(i, j);
      backend_index[{pool_name, Str(b, "name")}] = {i, j};
      std::string identity = StorageIdentity(b);
      if (!identity.empty()) {
        auto [it, inserted] = storage_seen.emplace(identity, field);
        if (!inserted) {
          out.push_back({field, "points at the same storage as " + it->second + " (" + identity +
                                    "): the same bytes would be allocated twice"});
        }
      }
      if (const json& iscsi = Sub(b, "iscsi"); iscsi.is_object()) {
        CheckChapSecret(cluster, iscsi, field, ctx, &out);
      }
      if (const json& file = Sub(b, "file"); file.is_object()) {
        std::optional<uint64_t> size = util::ParseByteQuantity(Str(file, "size"));
        if (!size) {
          out.push_back({field + ".file.size", "not a whole byte quantity"});
        } else if (extent && *size < *extent) {
          out.push_back({field + ".file.size", "smaller than the pool's extentSize " +
                                                   util::FormatByteQuantity(*extent)});
        }
      }
    }
  }

  // References from VIOSVolumes: a pool or backend in use must stay defined, and a file backend
  // must stay large enough for the extents allocated on it.
  for (const json& volume : ctx.volumes) {
    const json& vspec = Sub(volume, "spec");
    const std::string pool_name = Str(vspec, "pool");
    const std::string vname = NamespaceOf(volume) + "/" + NameOf(volume);
    auto pool_it = pool_index.find(pool_name);
    if (pool_it == pool_index.end()) {
      out.push_back({"spec.pools", "pool \"" + pool_name + "\" is used by VIOSVolume " + vname +
                                       " but is not defined"});
      continue;
    }
    const json& extents = Sub(vspec, "extents");
    if (!extents.is_array()) continue;
    for (const json& e : extents) {
      const std::string backend = Str(e, "backend");
      auto b_it = backend_index.find({pool_name, backend});
      if (b_it == backend_index.end()) {
        out.push_back(
            {"spec.pools[" + std::to_string(pool_it->second) + "].backends",
             "backend \"" + backend + "\" is used by VIOSVolume " + vname + " but is not defined"});
        break;
      }
      const json& file = Sub(pools[b_it->second.first]["backends"][b_it->second.second], "file");
      std::optional<uint64_t> size = util::ParseByteQuantity(Str(file, "size"));
      const json& off = Sub(e, "offset");
      const json& len = Sub(e, "length");
      const bool numbers = off.is_number_integer() && len.is_number_integer() &&
                           off.get<int64_t>() >= 0 && len.get<int64_t>() >= 0;
      if (file.is_object() && size && numbers &&
          off.get<uint64_t>() + len.get<uint64_t>() > *size) {
        out.push_back({BackendPath(b_it->second.first, b_it->second.second) + ".file.size",
                       "smaller than the extents VIOSVolume " + vname + " has on it (end " +
                           std::to_string(off.get<uint64_t>() + len.get<uint64_t>()) + ")"});
        break;
      }
    }
  }

  // Port ranges: agents use host networking, so the virtual port range must not contain the
  // agent's other ports nor overlap another cluster's range on the same hosts.
  auto [lo, hi] = PortRange(cluster);
  const std::pair<int64_t, const char*> reserved[] = {{ctx.agent_ports.peer, "peer channel"},
                                                      {ctx.agent_ports.data, "peer data channel"},
                                                      {ctx.agent_ports.metrics, "metrics"}};
  for (const auto& [port, what] : reserved) {
    if (port >= lo && port <= hi) {
      out.push_back({"spec.virtualPorts.portRange", "contains the agent's " + std::string(what) +
                                                        " port " + std::to_string(port)});
    }
  }
  for (const json& other : ctx.other_clusters) {
    if (NameOf(other) == NameOf(cluster) && NamespaceOf(other) == NamespaceOf(cluster)) continue;
    // Only the younger of two conflicting clusters is at fault: a running cluster does not turn
    // invalid because someone created a conflicting one.
    const std::string mine = Str(Sub(cluster, "metadata"), "creationTimestamp");
    const std::string theirs = Str(Sub(other, "metadata"), "creationTimestamp");
    if (std::make_pair(theirs, KeyOf(other)) > std::make_pair(mine, KeyOf(cluster))) continue;
    auto [olo, ohi] = PortRange(other);
    if (lo <= ohi && olo <= hi) {
      out.push_back({"spec.virtualPorts.portRange",
                     std::to_string(lo) + "-" + std::to_string(hi) + " overlaps VIOSCluster " +
                         NamespaceOf(other) + "/" + NameOf(other) + " (" + std::to_string(olo) +
                         "-" + std::to_string(ohi) + ")"});
    }
  }
  return out;
}

std::string FormatProblems(const std::vector<FieldProblem>& problems) {
  std::string s;
  for (const auto& p : problems) {
    if (!s.empty()) s += "; ";
    s += p.field + ": " + p.message;
  }
  return s;
}

}  // namespace vios::op
