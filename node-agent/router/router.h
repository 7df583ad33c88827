// Router: the BlockDevice through which all I/O to one backend LUN flows (DESIGN.md §4, §6).
//
// It owns the backend's paths (today: the local one), picks one per request (first Healthy, else
// first Degraded, else the first path, whose failure then reaches the caller), counts I/O per path,
// and retries a request that failed with a path error on another usable path. Requests are wrapped
// in pooled contexts: nothing is allocated per I/O in steady state.
//
//   Router router("pool0/lun0", std::move(file_backend));
//   router.Submit(&request);               // as on any BlockDevice
//   router.AddPath(std::make_unique<PeerPath>(...));   // later issue
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/router/path.h"

namespace vios::router {

class Router final : public backend::BlockDevice {
 public:
  // Router owns the backend and builds its LocalPath.
  Router(std::string name, std::unique_ptr<backend::BlockDevice> local,
         unsigned failure_threshold = 3);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  uint64_t SizeBytes() const override { return local_->SizeBytes(); }
  uint32_t BlockSize() const override { return local_->BlockSize(); }
  bool SupportsDiscard() const override { return local_->SupportsDiscard(); }
  void Submit(backend::IoRequest* request) override;
  std::string Describe() const override {
    return "router:" + name_ + "(" + local_->Describe() + ")";
  }

  // AddPath adds another path (a peer path, in the reroute issue).
  void AddPath(std::unique_ptr<Path> path);
  // ChoosePath returns the path the next request would take.
  Path* ChoosePath(const Path* exclude = nullptr) const;
  // Paths in order; the local path first.
  std::vector<Path*> Paths() const;
  LocalPath* local_path() { return local_path_; }
  backend::BlockDevice* local_backend() { return local_.get(); }
  const std::string& name() const { return name_; }

 private:
  struct Context;
  Context* AcquireContext();
  void ReleaseContext(Context* ctx);
  void Dispatch(Context* ctx, Path* path);
  void Done(Context* ctx);

  const std::string name_;
  std::unique_ptr<backend::BlockDevice> local_;
  LocalPath* local_path_ = nullptr;

  mutable std::shared_mutex paths_mutex_;
  std::vector<std::unique_ptr<Path>> paths_;

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<Context*> free_;
};

}  // namespace vios::router
