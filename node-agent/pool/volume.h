// Volume: a BlockDevice over an ordered list of extents of pool backends (DESIGN.md §4 "Pool").
//
// Volume offset v maps to the extent containing it; a request spanning extents is split into one
// sub-request per extent, and the caller's request completes once, after all parts did, with the
// first error any part reported. Flush goes to every distinct backend. Split contexts are pooled:
// no allocation per I/O in steady state. Extend appends extents at run time (volume expansion);
// the SCSI layer notices the new size and raises CAPACITY DATA HAS CHANGED.
//
//   auto volume = pool.OpenVolume("pvc-1", extents, &error);
//   LogicalUnit lu(volume.get(), config);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/backend/block_device.h"
#include "node-agent/pool/extent.h"

namespace vios::pool {

class Volume final : public backend::BlockDevice {
 public:
  // Segment is an extent resolved to its device (normally the backend's Router).
  struct Segment {
    backend::BlockDevice* device;
    uint64_t volume_offset;
    uint64_t backend_offset;
    uint64_t length;
  };

  Volume(std::string id, std::vector<Segment> segments, std::vector<Extent> extents,
         uint32_t block_size, bool supports_discard);
  ~Volume() override;
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  uint64_t SizeBytes() const override;
  uint32_t BlockSize() const override { return block_size_; }
  bool SupportsDiscard() const override { return supports_discard_; }
  void Submit(backend::IoRequest* request) override;
  std::string Describe() const override { return "volume:" + id_; }

  // Extend appends resolved segments (volume_offset is recomputed) and their extents.
  void Extend(std::vector<Segment> segments, std::vector<Extent> extents);
  const std::string& id() const { return id_; }
  std::vector<Extent> extents() const;

 private:
  struct Table {
    std::vector<Segment> segments;
    std::vector<backend::BlockDevice*> devices;  // Distinct devices, for Flush.
    uint64_t size = 0;
  };
  struct Split;
  Split* AcquireSplit();
  void ReleaseSplit(Split* split);
  void PartDone(Split* split, int result);

  const std::string id_;
  const uint32_t block_size_;
  const bool supports_discard_;
  std::atomic<std::shared_ptr<const Table>> table_;
  mutable std::mutex extents_mutex_;
  std::vector<Extent> extents_;

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Split>> splits_;
  std::vector<Split*> free_;
};

}  // namespace vios::pool
