// ExtentAllocator: first-fit allocation of extentSize-granular ranges over a pool's backends
// (the CSI controller's job, DESIGN.md §4 "Pool"). Not thread-safe: the owner serializes.
//
//   ExtentAllocator alloc(1ull << 30);
//   alloc.AddBackend("lun0", 100ull << 30);
//   for (const auto& v : existing_volumes) alloc.MarkUsed(v.extents, &error);
//   auto extents = alloc.Allocate(10ull << 30);   // nullopt when the pool is full
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "node-agent/pool/extent.h"

namespace vios::pool {

class ExtentAllocator {
 public:
  explicit ExtentAllocator(uint64_t extent_size);

  // AddBackend adds a backend whose usable space is size_bytes rounded down to extent_size.
  bool AddBackend(const std::string& name, uint64_t size_bytes);
  // Allocate returns extents totalling `bytes` rounded up to extent_size: one extent from the
  // first free range that fits whole, else pieces first-fit across ranges and backends in order.
  // All or nothing.
  std::optional<std::vector<Extent>> Allocate(uint64_t bytes);
  // MarkUsed records extents of an existing volume; false (nothing changed) if any part of them
  // is not free, which is how a double allocation is detected.
  bool MarkUsed(const std::vector<Extent>& extents, std::string* error);
  // Free returns extents to the free lists (coalescing); false if any part was already free.
  bool Free(const std::vector<Extent>& extents, std::string* error);

  uint64_t TotalBytes() const { return total_; }
  uint64_t FreeBytes() const;
  uint64_t extent_size() const { return extent_size_; }

 private:
  using FreeMap = std::map<uint64_t, uint64_t>;  // offset -> length
  static bool IsFree(const FreeMap& free, uint64_t offset, uint64_t length);
  static void Take(FreeMap* free, uint64_t offset, uint64_t length);
  static void Give(FreeMap* free, uint64_t offset, uint64_t length);
  bool Check(const Extent& e, std::string* error) const;

  const uint64_t extent_size_;
  uint64_t total_ = 0;
  std::vector<std::string> order_;         // Backends in the order added (first fit).
  std::map<std::string, uint64_t> sizes_;  // Usable bytes per backend.
  std::map<std::string, FreeMap> free_;
};

}  // namespace vios::pool
