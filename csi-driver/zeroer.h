// ExtentZeroer: zeroes a deleted volume's extents before the controller lets them be reused, so
// no tenant ever reads another's data (DESIGN.md §4 "Pool", §10).
//
// BackendZeroer opens the pool's file and device backends directly (the controller runs where the
// pool's files/devices are reachable: one machine, or a shared filesystem) and issues WriteZeroes
// through vios::pool::ZeroExtents (fallocate ZERO_RANGE, punch-hole or plain zero writes).
// iSCSI backends are refused: the caller keeps the volume in phase Releasing, never freeing the
// extents, until a zeroing path exists for them.
#pragma once

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
};

class BackendZeroer final : public ExtentZeroer {
 public:
  bool Zero(const PoolSpec& pool, const std::vector<pool::Extent>& extents,
            std::string* error) override;
};

}  // namespace vios::csi
