// PoolAllocator: level-based extent allocation with a per-pool ConfigMap as the optimistic-
// concurrency commit point (see allocator.h for the protocol and why it is race-free).
#include "csi-driver/allocator.h"

#include <ctime>
#include <map>
#include <set>

#include "common/log/log.h"
#include "common/util/quantity.h"
#include "csi-driver/names.h"
#include "csi-driver/volume_record.h"
#include "node-agent/pool/extent_allocator.h"

namespace vios::csi {
namespace {

namespace r = kube::resources;
constexpr int kMaxAttempts = 32;
constexpr const char* kReservationsKey = "reservations";

int64_t NowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

[[noreturn]] void ThrowApi(const kube::ApiError& e, const std::string& what) {
  throw AllocationError(grpc::StatusCode::UNAVAILABLE, what + ": " + e.what());
}

nlohmann::json Reservations(const nlohmann::json& cm) {
  auto data = cm.value("data", nlohmann::json::object());
  auto text = data.value(kReservationsKey, std::string());
  if (text.empty()) return nlohmann::json::object();
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed : nlohmann::json::object();
}

// Contains says whether every extent of `part` is one of `whole`'s.
bool Contains(const std::vector<pool::Extent>& whole, const std::vector<pool::Extent>& part) {
  for (const auto& e : part) {
    bool found = false;
    for (const auto& w : whole) found = found || w == e;
    if (!found) return false;
  }
  return true;
}

// PoolState is the allocator of one pool filled from the volumes and reservations, minus
// `exclude`'s reservation.
struct PoolState {
  pool::ExtentAllocator alloc;
  std::map<std::string, std::vector<pool::Extent>> volumes;  // name -> extents
  std::set<std::string> prunable;                            // reservations to drop
  explicit PoolState(uint64_t extent_size) : alloc(extent_size) {}
};

void MarkEach(pool::ExtentAllocator* alloc, const std::vector<pool::Extent>& extents) {
  // One extent at a time: a part already marked (an overlap that must not exist) must not stop
  // the rest from being marked; being conservative here is what keeps data safe.
  for (const auto& e : extents) {
    std::string error;
    if (!alloc->MarkUsed({e}, &error)) {
      VIOS_LOG(kWarning, "extent already in use or outside the pool").Field("error", error);
    }
  }
}

PoolState Load(kube::Client& client, const std::string& ns, const PoolSpec& pool,
               const nlohmann::json& reservations, const std::string& exclude) {
  PoolState state(pool.extent_size);
  for (const auto& b : pool.backends) {
    if (b.size > 0) state.alloc.AddBackend(b.name, b.size);
  }
  // Every volume of the namespace, not a label selection: a volume written by another tool
  // without our labels still owns its extents.
  kube::ListResult list;
  try {
    list = client.ListAll(r::kVIOSVolumes, ns);
  } catch (const kube::ApiError& e) {
    ThrowApi(e, "listing VIOSVolumes");
  }
  for (const auto& obj : list.items) {
    std::string error;
    auto rec = VolumeRecord::FromObject(obj, &error);
    if (!rec) {
      VIOS_LOG(kError, "unreadable VIOSVolume").Field("error", error);
      continue;
    }
    if (rec->cluster != pool.cluster || rec->pool != pool.name) continue;
    MarkEach(&state.alloc, rec->extents);
    state.volumes[rec->id] = rec->extents;
  }
  for (auto it = reservations.begin(); it != reservations.end(); ++it) {
    if (it.key() == exclude) continue;
    std::string error;
    auto extents = ExtentsFromJson(it.value().value("extents", nlohmann::json()), &error);
    if (!extents) {
      state.prunable.insert(it.key());
      continue;
    }
    auto vol = state.volumes.find(it.key());
    bool materialized = vol != state.volumes.end() && Contains(vol->second, *extents);
    bool stale = NowSeconds() - it.value().value("time", int64_t{0}) >
                 std::chrono::seconds(PoolAllocator::kStaleReservation).count();
    if (materialized || stale) {
      state.prunable.insert(it.key());
      continue;
    }
    MarkEach(&state.alloc, *extents);
  }
  return state;
}

}  // namespace

std::optional<PoolSpec> PoolSpec::FromCluster(const nlohmann::json& cluster,
                                              const std::string& pool, std::string* error) {
  auto pools = AllFromCluster(cluster);
  std::string cname = cluster["metadata"].value("name", "");
  if (pool.empty()) {
    if (pools.size() == 1) return pools[0];
    *error = "VIOSCluster " + cname + " has " + std::to_string(pools.size()) +
             " pools: name one with the 'pool' parameter";
    return std::nullopt;
  }
  for (auto& p : pools) {
    if (p.name == pool) return p;
  }
  *error = "VIOSCluster " + cname + " has no pool '" + pool + "'";
  return std::nullopt;
}

std::vector<PoolSpec> PoolSpec::AllFromCluster(const nlohmann::json& cluster) {
  std::vector<PoolSpec> out;
  auto pools =
      cluster.value("spec", nlohmann::json::object()).value("pools", nlohmann::json::array());
  for (const auto& p : pools) {
    PoolSpec spec;
    spec.cluster = cluster["metadata"].value("name", "");
    spec.name = p.value("name", "");
    if (auto es = util::ParseByteQuantity(p.value("extentSize", "64Mi")); es && *es > 0) {
      spec.extent_size = *es;
    }
    for (const auto& b : p.value("backends", nlohmann::json::array())) {
      BackendSpec bs;
      bs.name = b.value("name", "");
      if (b.contains("file")) {
        bs.kind = "file";
        bs.path = b["file"].value("path", "");
        bs.size = util::ParseByteQuantity(b["file"].value("size", "")).value_or(0);
      } else if (b.contains("device")) {
        bs.kind = "device";
        bs.path = b["device"].value("path", "");
      } else {
        bs.kind = "iscsi";
      }
      spec.backends.push_back(std::move(bs));
    }
    out.push_back(std::move(spec));
  }
  return out;
}

nlohmann::json PoolAllocator::GetOrCreateConfigMap(const PoolSpec& pool) {
  const std::string name = AllocationConfigMapName(pool.cluster, pool.name);
  for (int i = 0; i < 3; ++i) {
    try {
      return client_.Get(r::kConfigMaps, ns_, name);
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kNotFound) ThrowApi(e, "reading " + name);
    }
    nlohmann::json cm = {
        {"apiVersion", "v1"},
        {"kind", "ConfigMap"},
        {"metadata",
         {{"name", name},
          {"namespace", ns_},
          {"labels", {{"vios.dev/cluster", pool.cluster}, {"vios.dev/pool", pool.name}}}}},
        {"data", {{kReservationsKey, "{}"}}}};
    try {
      return client_.Create(r::kConfigMaps, ns_, cm);
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kAlreadyExists) ThrowApi(e, "creating " + name);
    }
  }
  throw AllocationError(grpc::StatusCode::ABORTED, "could not create ConfigMap " + name);
}

std::mutex& PoolAllocator::PoolLock(const PoolSpec& pool) {
  std::lock_guard<std::mutex> lock(locks_mutex_);
  auto& m = pool_locks_[pool.cluster + "/" + pool.name];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

std::vector<pool::Extent> PoolAllocator::Reserve(const PoolSpec& pool, const std::string& volume,
                                                 const std::vector<pool::Extent>& current,
                                                 uint64_t total_bytes) {
  // One commit at a time per pool in this process: concurrent calls of one controller would
  // otherwise only make each other's resourceVersion stale (measured: 8 parallel CreateVolumes
  // took seconds each and some ran out of attempts). Other replicas still race through the
  // precondition.
  std::lock_guard<std::mutex> pool_lock(PoolLock(pool));
  uint64_t have = 0;
  for (const auto& e : current) have += e.length;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    nlohmann::json cm = GetOrCreateConfigMap(pool);
    nlohmann::json reservations = Reservations(cm);
    // A retried call finds its own committed reservation and returns it unchanged.
    if (reservations.contains(volume)) {
      std::string error;
      auto mine = ExtentsFromJson(reservations[volume].value("extents", nlohmann::json()), &error);
      if (mine && Contains(*mine, current)) {
        uint64_t bytes = 0;
        for (const auto& e : *mine) bytes += e.length;
        if (bytes >= total_bytes) return *mine;
      }
    }
    PoolState state = Load(client_, ns_, pool, reservations, volume);
    std::vector<pool::Extent> result = current;
    if (total_bytes > have) {
      auto more = state.alloc.Allocate(total_bytes - have);
      if (!more) {
        throw AllocationError(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "pool " + pool.name + " of VIOSCluster " + pool.cluster +
                                  " has no room for " + std::to_string(total_bytes - have) +
                                  " more bytes (" + std::to_string(state.alloc.FreeBytes()) +
                                  " free)");
      }
      result.insert(result.end(), more->begin(), more->end());
    }
    for (const auto& name : state.prunable) reservations.erase(name);
    reservations[volume] = {{"extents", ExtentsToJson(result)}, {"time", NowSeconds()}};
    cm["data"][kReservationsKey] = reservations.dump();
    try {
      client_.Update(r::kConfigMaps, cm);  // precondition: the resourceVersion read above
      return result;
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kConflict) ThrowApi(e, "committing the allocation");
      VIOS_LOG(kDebug, "allocation conflict, retrying")
          .Field("volume", volume)
          .Field("attempt", attempt);
    }
  }
  throw AllocationError(grpc::StatusCode::ABORTED,
                        "too many concurrent allocations in pool " + pool.name + "; retry");
}

void PoolAllocator::Release(const PoolSpec& pool, const std::string& volume) {
  std::lock_guard<std::mutex> pool_lock(PoolLock(pool));
  for (int attempt = 0; attempt < 5; ++attempt) {
    try {
      nlohmann::json cm =
          client_.Get(r::kConfigMaps, ns_, AllocationConfigMapName(pool.cluster, pool.name));
      nlohmann::json reservations = Reservations(cm);
      if (!reservations.contains(volume)) return;
      reservations.erase(volume);
      cm["data"][kReservationsKey] = reservations.dump();
      client_.Update(r::kConfigMaps, cm);
      return;
    } catch (const kube::ApiError& e) {
      if (e.kind() != kube::ErrorKind::kConflict) {
        VIOS_LOG(kWarning, "could not release a reservation (pruned later)")
            .Field("volume", volume)
            .Field("error", e.what());
        return;
      }
    }
  }
}

uint64_t PoolAllocator::FreeBytes(const PoolSpec& pool) {
  nlohmann::json reservations = nlohmann::json::object();
  try {
    reservations = Reservations(
        client_.Get(r::kConfigMaps, ns_, AllocationConfigMapName(pool.cluster, pool.name)));
  } catch (const kube::ApiError& e) {
    if (e.kind() != kube::ErrorKind::kNotFound) ThrowApi(e, "reading the allocation ConfigMap");
  }
  return Load(client_, ns_, pool, reservations, "").alloc.FreeBytes();
}

}  // namespace vios::csi
