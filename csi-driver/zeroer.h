// ExtentZeroer: zeroes a deleted volume's extents before the controller lets them be reused, so
// no tenant ever reads another's data (DESIGN.md §4 "Pool", §10), and copies a volume's bytes into
// a new volume's extents (clones: CSI CreateVolume with a volume_content_source).
//
// BackendZeroer opens the pool's file and device backends directly (the controller runs where the
// pool's files/devices are reachable: one machine, or a shared filesystem) and issues WriteZeroes
// through vios::pool::ZeroExtents (fallocate ZERO_RANGE, punch-hole or plain zero writes).
// iSCSI backends are refused: the caller keeps the volume in phase Releasing, never freeing the
// extents, until a zeroing path exists for them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csi-driver/allocator.h"
#include "node-agent/pool/extent.h"

namespace vios::csi {

class ExtentZeroer {
 public:
  virtual ~ExtentZeroer() = default;
  // Zero returns true once every extent reads back as zeroes; false with error otherwise.
  virtual bool Zero(const PoolSpec& pool, const std::vector<pool::Extent>& extents,
                    std::string* error) = 0;
  // Copy copies the first `bytes` bytes of the volume laid out as `from` into the volume laid out
  // as `to` (a clone), and makes them durable. `to` must read as zeroes beforehand (fresh
  // extents always do: freed extents are zeroed), so runs of zeroes are skipped and a sparse
  // source stays sparse. False with error on the first failure.
  virtual bool Copy(const PoolSpec& pool, const std::vector<pool::Extent>& from,
                    const std::vector<pool::Extent>& to, uint64_t bytes, std::string* error) = 0;
};

class BackendZeroer final : public ExtentZeroer {
 public:
  bool Zero(const PoolSpec& pool, const std::vector<pool::Extent>& extents,
            std::string* error) override;
  // Copy reads and writes the pool's file/device backends directly (pread/pwrite, then
  // fdatasync); iSCSI backends are refused like for Zero.
  bool Copy(const PoolSpec& pool, const std::vector<pool::Extent>& from,
            const std::vector<pool::Extent>& to, uint64_t bytes, std::string* error) override;
};

}  // namespace vios::csi
