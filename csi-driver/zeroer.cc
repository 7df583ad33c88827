// BackendZeroer: zero extents through the pool's own backends (see zeroer.h).
#include "csi-driver/zeroer.h"

#include <set>

#include "node-agent/backend/file_backend.h"
#include "node-agent/pool/pool.h"
#include "node-agent/pool/zero_extents.h"

namespace vios::csi {

bool BackendZeroer::Zero(const PoolSpec& spec, const std::vector<pool::Extent>& extents,
                         std::string* error) {
  if (extents.empty()) return true;
  std::set<std::string> used;
  for (const auto& e : extents) used.insert(e.backend);
  pool::Pool p(spec.name, spec.extent_size);
  for (const auto& b : spec.backends) {
    if (!used.count(b.name)) continue;
    if (b.kind != "file" && b.kind != "device") {
      *error = "backend " + b.name + " is " + b.kind +
               ": the controller cannot zero it; the volume stays Releasing";
      return false;
    }
    backend::FileBackendOptions options;
    options.path = b.path;
    options.size_bytes = 0;  // the file's current size; never create or grow here
    std::string open_error;
    auto device = backend::FileBackend::Open(options, &open_error);
    if (!device) {
      *error = "opening backend " + b.name + " (" + b.path + "): " + open_error;
      return false;
    }
    if (!p.AddBackend(b.name, std::move(device), error)) return false;
  }
  for (const auto& name : used) {
    if (!p.Backend(name)) {
      *error = "extent on backend " + name + " which pool " + spec.name + " does not have";
      return false;
    }
  }
  return pool::ZeroExtents(p, extents, error);
}

}  // namespace vios::csi
