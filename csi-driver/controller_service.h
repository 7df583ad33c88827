// ControllerService: the CSI Controller service (CSI spec v1.12 "Controller Service RPC") over
// VIOSVolume objects. Each RPC checks the capability, then the arguments, and returns the code the
// spec names. Allocation goes through PoolAllocator (race-free across replicas); deletion zeroes
// the extents (ExtentZeroer) before the VIOSVolume, and with it the extents' ownership, goes away.
//
// Locking: volume_locks_ holds the ids of volumes with an RPC in progress in this process; a
// second concurrent RPC on the same id gets ABORTED (CSI spec "Concurrency"). Correctness across
// replicas does not rely on it: every write carries a resourceVersion precondition.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/kube/client.h"
#include "csi-driver/allocator.h"
#include "csi-driver/rpc_metrics.h"
#include "csi-driver/volume_record.h"
#include "csi-driver/zeroer.h"
#include "proto/csi.grpc.pb.h"

namespace vios::csi {

struct ControllerOptions {
  std::string ns = "default";   // namespace of VIOSClusters, VIOSVolumes, allocation ConfigMaps
  std::string default_cluster;  // VIOSCluster when the StorageClass names none
  uint64_t default_size = 1ull << 30;  // CreateVolume without capacity_range
  // pools_changed is called after an RPC changed what a pool has allocated (create, delete,
  // expand): the pool metrics refresh soon. May be empty.
  std::function<void()> pools_changed;
};

class ControllerService final : public ::csi::v1::Controller::Service {
 public:
  ControllerService(kube::Client& client, ExtentZeroer& zeroer, ControllerOptions options,
                    RpcMetrics& metrics);

  grpc::Status CreateVolume(grpc::ServerContext*, const ::csi::v1::CreateVolumeRequest* request,
                            ::csi::v1::CreateVolumeResponse* response) override;
  grpc::Status DeleteVolume(grpc::ServerContext*, const ::csi::v1::DeleteVolumeRequest* request,
                            ::csi::v1::DeleteVolumeResponse* response) override;
  grpc::Status ControllerPublishVolume(
      grpc::ServerContext*, const ::csi::v1::ControllerPublishVolumeRequest* request,
      ::csi::v1::ControllerPublishVolumeResponse* response) override;
  grpc::Status ControllerUnpublishVolume(
      grpc::ServerContext*, const ::csi::v1::ControllerUnpublishVolumeRequest* request,
      ::csi::v1::ControllerUnpublishVolumeResponse* response) override;
  grpc::Status ValidateVolumeCapabilities(
      grpc::ServerContext*, const ::csi::v1::ValidateVolumeCapabilitiesRequest* request,
      ::csi::v1::ValidateVolumeCapabilitiesResponse* response) override;
  grpc::Status ListVolumes(grpc::ServerContext*, const ::csi::v1::ListVolumesRequest* request,
                           ::csi::v1::ListVolumesResponse* response) override;
  grpc::Status GetCapacity(grpc::ServerContext*, const ::csi::v1::GetCapacityRequest* request,
                           ::csi::v1::GetCapacityResponse* response) override;
  grpc::Status ControllerGetCapabilities(
      grpc::ServerContext*, const ::csi::v1::ControllerGetCapabilitiesRequest* request,
      ::csi::v1::ControllerGetCapabilitiesResponse* response) override;
  grpc::Status ControllerGetVolume(grpc::ServerContext*,
                                   const ::csi::v1::ControllerGetVolumeRequest* request,
                                   ::csi::v1::ControllerGetVolumeResponse* response) override;
  grpc::Status ControllerExpandVolume(grpc::ServerContext*,
                                      const ::csi::v1::ControllerExpandVolumeRequest* request,
                                      ::csi::v1::ControllerExpandVolumeResponse* response) override;

 private:
  grpc::Status DoCreateVolume(const ::csi::v1::CreateVolumeRequest& req,
                              ::csi::v1::CreateVolumeResponse* resp);
  grpc::Status DoDeleteVolume(const std::string& id);
  grpc::Status DoPublish(const ::csi::v1::ControllerPublishVolumeRequest& req,
                         ::csi::v1::ControllerPublishVolumeResponse* resp);
  grpc::Status DoUnpublish(const std::string& id, const std::string& node);
  grpc::Status DoExpand(const ::csi::v1::ControllerExpandVolumeRequest& req,
                        ::csi::v1::ControllerExpandVolumeResponse* resp);

  // GetVolume reads a VIOSVolume; nullopt when it does not exist. Throws kube::ApiError.
  std::optional<VolumeRecord> GetVolume(const std::string& id);
  // GetPool reads the VIOSCluster and finds the pool; INVALID_ARGUMENT status when either is
  // missing.
  grpc::Status GetPool(const std::string& cluster, const std::string& pool, PoolSpec* out);
  void FillVolume(const VolumeRecord& rec, ::csi::v1::Volume* volume) const;
  // CheckCloneSource reads the source of a clone into *source and checks it can be cloned into
  // `pool` as a `volume_mode` volume (NOT_FOUND, INVALID_ARGUMENT, ABORTED otherwise).
  grpc::Status CheckCloneSource(const std::string& source_id, const PoolSpec& pool,
                                const std::string& volume_mode,
                                std::optional<VolumeRecord>* source);
  // FinishClone copies the source's bytes into rec's extents, then marks rec Available.
  grpc::Status FinishClone(const PoolSpec& pool, const VolumeRecord& source, VolumeRecord* rec);
  bool NodeExists(const std::string& node);
  void PoolsChanged();

  // VolumeLock marks one volume id busy for the lifetime of the guard.
  class VolumeLock {
   public:
    VolumeLock(ControllerService& owner, std::string id);
    ~VolumeLock();
    bool acquired() const { return acquired_; }

   private:
    ControllerService& owner_;
    std::string id_;
    bool acquired_;
  };

  kube::Client& client_;
  ExtentZeroer& zeroer_;
  ControllerOptions options_;
  RpcMetrics& metrics_;
  PoolAllocator allocator_;
  std::mutex mutex_;
  std::set<std::string> volume_locks_;  // guarded by mutex_
};

// Guarded runs fn and turns exceptions from the layers below into statuses: API server failures
// UNAVAILABLE, allocation errors their own code, anything else INTERNAL.
grpc::Status Guarded(const std::function<grpc::Status()>& fn);

}  // namespace vios::csi
