// Extent: a byte range of one pool backend, the unit a volume is built from (VIOSVolume.spec
// extents[], DESIGN.md §3).
#pragma once

#include <cstdint>
#include <string>

namespace vios::pool {

struct Extent {
  std::string backend;  // Backend name within the pool.
  uint64_t offset = 0;  // Bytes into the backend.
  uint64_t length = 0;  // Bytes.
  bool operator==(const Extent&) const = default;
};

}  // namespace vios::pool
