// Pool: the backends of one storage pool (VIOSCluster.spec.pools[], DESIGN.md §3), each behind
// its Router, and the factory of Volumes over them.
//
//   Pool pool("pool0", /*extent_size=*/1ull << 30);
//   pool.AddBackend("lun0", FileBackend::Open(options, &error), &error);
//   auto volume = pool.OpenVolume("pvc-1", {{"lun0", 0, 1ull << 30}}, &error);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/pool/extent.h"
#include "node-agent/pool/volume.h"
#include "node-agent/router/router.h"

namespace vios::pool {

class Pool {
 public:
  Pool(std::string name, uint64_t extent_size);

  // AddBackend puts device behind a new Router named "<pool>/<backend>". All backends of a pool
  // must share one block size. False (with error) on duplicates or a mismatched block size.
  bool AddBackend(const std::string& name, std::unique_ptr<backend::BlockDevice> device,
                  std::string* error);
  // Backend returns the router of a backend, or null.
  router::Router* Backend(const std::string& name) const;
  std::vector<std::string> BackendNames() const;

  // OpenVolume builds a Volume over extents after checking each lies inside its backend and is
  // block aligned. Returns null with error otherwise.
  std::unique_ptr<Volume> OpenVolume(const std::string& id, const std::vector<Extent>& extents,
                                     std::string* error) const;
  // ExtendVolume appends extents to an open volume (volume expansion), with the same checks.
  bool ExtendVolume(Volume* volume, const std::vector<Extent>& extents, std::string* error) const;

  const std::string& name() const { return name_; }
  uint64_t extent_size() const { return extent_size_; }
  uint32_t block_size() const;

 private:
  bool Resolve(const std::vector<Extent>& extents, std::vector<Volume::Segment>* segments,
               bool* discard, std::string* error) const;

  const std::string name_;
  const uint64_t extent_size_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<router::Router>> backends_;
};

}  // namespace vios::pool
