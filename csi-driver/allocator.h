// PoolAllocator: hands out extents of a VIOSCluster pool to volumes, never the same extent twice,
// also when several controller replicas allocate at the same time (DESIGN.md §4 "Pool").
//
// Allocation state is level-based: the extents in use are those of the VIOSVolumes of the pool
// plus the reservations in the pool's allocation ConfigMap. Every allocation is committed to that
// ConfigMap with an optimistic-concurrency update (its resourceVersion is the precondition) BEFORE
// the VIOSVolume is written:
//
//   1. GET the ConfigMap (version R), then LIST the pool's VIOSVolumes (a quorum read, so every
//      volume created before this point is seen).
//   2. MarkUsed every volume's extents and every other reservation; Allocate.
//   3. PUT the ConfigMap with reservations[volume] = extents, precondition R. A concurrent
//      allocator that committed first makes this fail with Conflict: start again at 1.
//   4. The caller creates/updates the VIOSVolume, then Release() drops the reservation.
//
// Within one process the commits to a pool are serialized by a mutex (no self-inflicted
// conflicts); across processes the precondition alone decides.
//
// Any allocator that commits after step 3 read version >= R' and so sees the reservation; once it
// is dropped the volume object already exists and is seen by the LIST that follows the GET. A
// reservation whose volume never appears (a controller died between 3 and 4) is reused by the
// retried CreateVolume of the same name, and pruned after kStaleReservation otherwise.
//
//   PoolAllocator alloc(client, "vios-system");
//   auto pool = PoolSpec::FromCluster(cluster_json, "default", &error);
//   auto extents = alloc.Reserve(*pool, "pvc-1", {}, 1 << 30);   // throws AllocationError
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "node-agent/pool/extent.h"

namespace vios::csi {

// BackendSpec is one backend of a pool as the controller needs it.
struct BackendSpec {
  std::string name;
  std::string kind;   // file, device, iscsi
  std::string path;   // file/device path
  uint64_t size = 0;  // known for file backends; 0 = unknown (not allocatable by the controller)
};

// PoolSpec is one pool of a VIOSCluster.
struct PoolSpec {
  std::string cluster;
  std::string name;
  uint64_t extent_size = 64ull << 20;
  std::vector<BackendSpec> backends;

  // FromCluster finds pool `pool` in a VIOSCluster object; "" picks the only pool. nullopt with
  // error naming the problem.
  static std::optional<PoolSpec> FromCluster(const nlohmann::json& cluster, const std::string& pool,
                                             std::string* error);
  // AllFromCluster returns every pool of the cluster.
  static std::vector<PoolSpec> AllFromCluster(const nlohmann::json& cluster);
  // CapacityBytes is what the allocator can hand out: whole extents of the backends whose size
  // is known (the remainder of a backend smaller than an extent is never allocated).
  uint64_t CapacityBytes() const {
    uint64_t total = 0;
    for (const auto& b : backends) total += b.size / extent_size * extent_size;
    return total;
  }
  uint64_t RoundUp(uint64_t bytes) const {
    return (bytes + extent_size - 1) / extent_size * extent_size;
  }
};

// AllocationError carries the gRPC code the CSI call should return.
class AllocationError : public std::runtime_error {
 public:
  AllocationError(grpc::StatusCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  grpc::StatusCode code() const { return code_; }

 private:
  grpc::StatusCode code_;
};

class PoolAllocator {
 public:
  static constexpr std::chrono::hours kStaleReservation{1};

  PoolAllocator(kube::Client& client, std::string ns) : client_(client), ns_(std::move(ns)) {}

  // Reserve returns the full extent list of `volume` totalling at least total_bytes: `current`
  // (its extents so far, empty for a new volume) followed by new extents. Committed as a
  // reservation before it returns. Throws AllocationError (RESOURCE_EXHAUSTED when the pool is
  // full, ABORTED after too many conflicts, UNAVAILABLE when the API server fails).
  std::vector<pool::Extent> Reserve(const PoolSpec& pool, const std::string& volume,
                                    const std::vector<pool::Extent>& current, uint64_t total_bytes);
  // Release drops the reservation of `volume` once its VIOSVolume holds the extents. Best effort:
  // a reservation left behind is pruned by the next Reserve that sees the volume.
  void Release(const PoolSpec& pool, const std::string& volume);
  // FreeBytes is the pool's unallocated capacity (volumes and reservations subtracted).
  uint64_t FreeBytes(const PoolSpec& pool);

 private:
  nlohmann::json GetOrCreateConfigMap(const PoolSpec& pool);
  // PoolLock serializes this process's commits to one pool's ConfigMap.
  std::mutex& PoolLock(const PoolSpec& pool);

  kube::Client& client_;
  std::string ns_;
  std::mutex locks_mutex_;
  std::map<std::string, std::unique_ptr<std::mutex>> pool_locks_;  // guarded by locks_mutex_
};

}  // namespace vios::csi
