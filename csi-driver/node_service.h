// NodeService: the CSI Node service (CSI spec v1.12 "Node Service RPC"). NodeStageVolume asks the
// local vios-agent (proto/agent.proto over its unix socket) for a virtual port serving the volume
// and attaches it through the volume's transport: `fuse` puts a loop device on the port's FUSE
// file, `iscsi` logs the kernel initiator in (IscsiAttacher). Mount volumes are formatted if blank
// and mounted at the staging path; block volumes keep the device for NodePublishVolume, which
// bind-mounts (read-only where asked). Unstage/Unpublish undo every step and are idempotent.
//
// What was done for a staged volume is kept in a small JSON file per volume under state_dir, so a
// restarted plugin can still unstage; it is written as soon as the port exists.
//
// Locking: busy_ holds volume ids with an RPC in progress; a concurrent RPC on the same volume
// gets ABORTED (CSI spec "Concurrency").
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "csi-driver/iscsi_attacher.h"
#include "csi-driver/rpc_metrics.h"
#include "csi-driver/volume_record.h"
#include "proto/agent.grpc.pb.h"
#include "proto/csi.grpc.pb.h"

namespace vios::csi {

struct NodeOptions {
  std::string node_id;
  std::string ns = "default";  // namespace of VIOSVolumes
  std::string agent_socket = "/run/vios/agent.sock";
  std::string state_dir = "/var/lib/vios-csi";  // one JSON file per staged volume
  std::string by_path_dir = "/dev/disk/by-path";
  int64_t max_volumes_per_node = 0;
};

class NodeService final : public ::csi::v1::Node::Service {
 public:
  NodeService(kube::Client& client, NodeOptions options, RpcMetrics& metrics);

  grpc::Status NodeStageVolume(grpc::ServerContext*,
                               const ::csi::v1::NodeStageVolumeRequest* request,
                               ::csi::v1::NodeStageVolumeResponse* response) override;
  grpc::Status NodeUnstageVolume(grpc::ServerContext*,
                                 const ::csi::v1::NodeUnstageVolumeRequest* request,
                                 ::csi::v1::NodeUnstageVolumeResponse* response) override;
  grpc::Status NodePublishVolume(grpc::ServerContext*,
                                 const ::csi::v1::NodePublishVolumeRequest* request,
                                 ::csi::v1::NodePublishVolumeResponse* response) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext*,
                                   const ::csi::v1::NodeUnpublishVolumeRequest* request,
                                   ::csi::v1::NodeUnpublishVolumeResponse* response) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext*,
                                  const ::csi::v1::NodeGetVolumeStatsRequest* request,
                                  ::csi::v1::NodeGetVolumeStatsResponse* response) override;
  grpc::Status NodeExpandVolume(grpc::ServerContext*,
                                const ::csi::v1::NodeExpandVolumeRequest* request,
                                ::csi::v1::NodeExpandVolumeResponse* response) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext*,
                                   const ::csi::v1::NodeGetCapabilitiesRequest* request,
                                   ::csi::v1::NodeGetCapabilitiesResponse* response) override;
  grpc::Status NodeGetInfo(grpc::ServerContext*, const ::csi::v1::NodeGetInfoRequest* request,
                           ::csi::v1::NodeGetInfoResponse* response) override;

  // AgentReady checks that the local agent answers AgentInfo (Identity.Probe).
  grpc::Status AgentReady();

 private:
  // StagedVolume is the state file of one staged volume.
  struct StagedVolume {
    std::string volume_id;
    std::string staging_path;
    std::string port;
    std::string transport;  // fuse | iscsi
    std::string fuse_path;
    std::string device;  // /dev/loopN or /dev/sdX
    bool block = false;
    std::string fs_type;
    IscsiTarget iscsi;
    nlohmann::json ToJson() const;
    static StagedVolume FromJson(const nlohmann::json& j);
  };

  grpc::Status DoStage(const ::csi::v1::NodeStageVolumeRequest& req);
  grpc::Status DoUnstage(const std::string& id, const std::string& staging);
  grpc::Status DoPublish(const ::csi::v1::NodePublishVolumeRequest& req);
  grpc::Status DoExpand(const ::csi::v1::NodeExpandVolumeRequest& req,
                        ::csi::v1::NodeExpandVolumeResponse* resp);
  grpc::Status DoStats(const ::csi::v1::NodeGetVolumeStatsRequest& req,
                       ::csi::v1::NodeGetVolumeStatsResponse* resp);

  grpc::Status CreatePort(const VolumeRecord& rec, const std::string& transport,
                          const google::protobuf::Map<std::string, std::string>& secrets,
                          StagedVolume* staged, vios::agent::v1::VirtualPort* port);
  std::optional<VolumeRecord> GetVolume(const std::string& id);
  std::optional<StagedVolume> LoadState(const std::string& id) const;
  bool SaveState(const StagedVolume& s, std::string* error) const;
  void RemoveState(const std::string& id) const;
  std::string StatePath(const std::string& id) const;
  bool TryLock(const std::string& id);
  void Unlock(const std::string& id);

  kube::Client& client_;
  NodeOptions options_;
  RpcMetrics& metrics_;
  IscsiAttacher iscsi_;
  std::unique_ptr<vios::agent::v1::Agent::Stub> agent_;
  std::mutex mutex_;
  std::set<std::string> busy_;  // guarded by mutex_
};

}  // namespace vios::csi
