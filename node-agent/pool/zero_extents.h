// ZeroExtents: zero (or deallocate) extents of a pool before they are reused, so no tenant ever
// reads another's data (DESIGN.md §4, §10). Blocking; for control-plane code, not the data path.
//
//   std::string error;
//   if (!ZeroExtents(pool, volume_extents, &error)) { ... keep the extents out of the free list ...
//   }
#pragma once

#include <string>
#include <vector>

#include "node-agent/pool/extent.h"
#include "node-agent/pool/pool.h"

namespace vios::pool {

// ZeroExtents issues WriteZeroes (chunks of at most 1 GiB) for every extent through the backend
// routers, flushes each backend, and waits. False with error on the first failure.
bool ZeroExtents(const Pool& pool, const std::vector<Extent>& extents, std::string* error);

}  // namespace vios::pool
