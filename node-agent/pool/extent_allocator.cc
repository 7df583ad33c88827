// ExtentAllocator: free lists per backend, first fit.
#include "node-agent/pool/extent_allocator.h"

#include <iterator>

namespace vios::pool {

ExtentAllocator::ExtentAllocator(uint64_t extent_size) : extent_size_(extent_size) {}

bool ExtentAllocator::AddBackend(const std::string& name, uint64_t size_bytes) {
  if (sizes_.count(name) != 0 || extent_size_ == 0) {
    return false;
  }
  const uint64_t usable = size_bytes - size_bytes % extent_size_;
  order_.push_back(name);
  sizes_[name] = usable;
  free_[name] = {};
  if (usable != 0) {
    free_[name][0] = usable;
  }
  total_ += usable;
  return true;
}

uint64_t ExtentAllocator::FreeBytes() const {
  uint64_t sum = 0;
  for (const auto& [name, ranges] : free_) {
    for (const auto& [off, len] : ranges) {
      sum += len;
    }
  }
  return sum;
}

bool ExtentAllocator::IsFree(const FreeMap& free, uint64_t offset, uint64_t length) {
  auto it = free.upper_bound(offset);
  if (it == free.begin()) {
    return false;
  }
  --it;
  return it->first <= offset && offset + length <= it->first + it->second;
}

void ExtentAllocator::Take(FreeMap* free, uint64_t offset, uint64_t length) {
  auto it = std::prev(free->upper_bound(offset));
  const uint64_t start = it->first;
  const uint64_t end = it->first + it->second;
  free->erase(it);
  if (start < offset) {
    (*free)[start] = offset - start;
  }
  if (offset + length < end) {
    (*free)[offset + length] = end - (offset + length);
  }
}

void ExtentAllocator::Give(FreeMap* free, uint64_t offset, uint64_t length) {
  auto next = free->lower_bound(offset);
  if (next != free->end() && next->first == offset + length) {
    length += next->second;
    next = free->erase(next);
  }
  if (next != free->begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += length;
      return;
    }
  }
  (*free)[offset] = length;
}

bool ExtentAllocator::Check(const Extent& e, std::string* error) const {
  auto it = sizes_.find(e.backend);
  if (it == sizes_.end()) {
    *error = "unknown backend " + e.backend;
    return false;
  }
  if (e.length == 0 || e.offset % extent_size_ != 0 || e.length % extent_size_ != 0 ||
      e.offset > it->second || e.length > it->second - e.offset) {
    *error = "extent on " + e.backend + " is not a whole number of extents inside the backend";
    return false;
  }
  return true;
}

std::optional<std::vector<Extent>> ExtentAllocator::Allocate(uint64_t bytes) {
  if (bytes == 0) {
    return std::vector<Extent>{};
  }
  const uint64_t want = (bytes + extent_size_ - 1) / extent_size_ * extent_size_;
  if (want > FreeBytes()) {
    return std::nullopt;
  }
  // One contiguous range if any fits.
  for (const std::string& name : order_) {
    FreeMap& free = free_[name];
    for (const auto& [off, len] : free) {
      if (len >= want) {
        const uint64_t at = off;
        Take(&free, at, want);
        return std::vector<Extent>{{name, at, want}};
      }
    }
  }
  // Otherwise pieces, first fit, in backend order.
  std::vector<Extent> out;
  uint64_t left = want;
  for (const std::string& name : order_) {
    FreeMap& free = free_[name];
    while (left != 0 && !free.empty()) {
      const auto [off, len] = *free.begin();
      const uint64_t n = std::min(len, left);
      Take(&free, off, n);
      out.push_back(Extent{name, off, n});
      left -= n;
    }
    if (left == 0) {
      break;
    }
  }
  return out;
}

bool ExtentAllocator::MarkUsed(const std::vector<Extent>& extents, std::string* error) {
  // Validate everything first (including overlaps among the given extents) so a failure changes
  // nothing.
  std::map<std::string, FreeMap> trial;
  for (const Extent& e : extents) {
    if (!Check(e, error)) {
      return false;
    }
    if (trial.count(e.backend) == 0) {
      trial[e.backend] = free_[e.backend];
    }
    if (!IsFree(trial[e.backend], e.offset, e.length)) {
      *error = "extent " + e.backend + "@" + std::to_string(e.offset) + " is already allocated";
      return false;
    }
    Take(&trial[e.backend], e.offset, e.length);
  }
  for (auto& [name, free] : trial) {
    free_[name] = std::move(free);
  }
  return true;
}

bool ExtentAllocator::Free(const std::vector<Extent>& extents, std::string* error) {
  std::map<std::string, FreeMap> trial;
  for (const Extent& e : extents) {
    if (!Check(e, error)) {
      return false;
    }
    if (trial.count(e.backend) == 0) {
      trial[e.backend] = free_[e.backend];
    }
    FreeMap& free = trial[e.backend];
    // Any overlap with a free range means a double free.
    auto it = free.upper_bound(e.offset);
    if (it != free.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second > e.offset) {
        *error = "extent " + e.backend + "@" + std::to_string(e.offset) + " is already free";
        return false;
      }
    }
    if (it != free.end() && it->first < e.offset + e.length) {
      *error = "extent " + e.backend + "@" + std::to_string(e.offset) + " is already free";
      return false;
    }
    Give(&free, e.offset, e.length);
  }
  for (auto& [name, free] : trial) {
    free_[name] = std::move(free);
  }
  return true;
}

}  // namespace vios::pool
