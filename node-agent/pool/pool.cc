// Pool: backends behind routers; volume construction with extent validation.
#include "node-agent/pool/pool.h"

namespace vios::pool {

Pool::Pool(std::string name, uint64_t extent_size)
    : name_(std::move(name)), extent_size_(extent_size) {}

bool Pool::AddBackend(const std::string& name, std::unique_ptr<backend::BlockDevice> device,
                      std::string* error) {
  if (device == nullptr) {
    *error = "backend " + name + ": no device";
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (backends_.count(name) != 0) {
    *error = "backend " + name + " already in pool " + name_;
    return false;
  }
  if (!backends_.empty() && backends_.begin()->second->BlockSize() != device->BlockSize()) {
    *error = "backend " + name + ": block size differs from the pool's";
    return false;
  }
  backends_[name] = std::make_unique<router::Router>(name_ + "/" + name, std::move(device));
  return true;
}

router::Router* Pool::Backend(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = backends_.find(name);
  return it == backends_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Pool::BackendNames() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, router] : backends_) {
    names.push_back(name);
  }
  return names;
}

uint32_t Pool::block_size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return backends_.empty() ? 512 : backends_.begin()->second->BlockSize();
}

bool Pool::Resolve(const std::vector<Extent>& extents, std::vector<Volume::Segment>* segments,
                   bool* discard, std::string* error) const {
  const uint32_t bs = block_size();
  *discard = true;
  for (const Extent& e : extents) {
    router::Router* r = Backend(e.backend);
    if (r == nullptr) {
      *error = "extent on unknown backend " + e.backend;
      return false;
    }
    if (e.length == 0 || e.offset % bs != 0 || e.length % bs != 0) {
      *error = "extent on " + e.backend + " is empty or not block aligned";
      return false;
    }
    if (e.offset > r->SizeBytes() || e.length > r->SizeBytes() - e.offset) {
      *error = "extent beyond the end of backend " + e.backend;
      return false;
    }
    *discard = *discard && r->SupportsDiscard();
    segments->push_back(Volume::Segment{r, 0, e.offset, e.length});
  }
  return true;
}

std::unique_ptr<Volume> Pool::OpenVolume(const std::string& id, const std::vector<Extent>& extents,
                                         std::string* error) const {
  std::vector<Volume::Segment> segments;
  bool discard = true;
  if (!Resolve(extents, &segments, &discard, error)) {
    return nullptr;
  }
  return std::make_unique<Volume>(id, std::move(segments), extents, block_size(), discard);
}

bool Pool::ExtendVolume(Volume* volume, const std::vector<Extent>& extents,
                        std::string* error) const {
  std::vector<Volume::Segment> segments;
  bool discard = true;
  if (!Resolve(extents, &segments, &discard, error)) {
    return false;
  }
  volume->Extend(std::move(segments), extents);
  return true;
}

}  // namespace vios::pool
