// MemoryBackend: a BlockDevice held in RAM. Completes every request synchronously, inside Submit.
//
// Used by unit tests above the backend boundary (SCSI layer, pool, router) and handy as a scratch
// volume; it is a real BlockDevice, not a mock. Thread-safe.
//
//   MemoryBackend disk(64 << 20);      // 64 MiB, 512-byte blocks
//   disk.FailNext(-EIO);               // the next request fails with EIO
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/backend/block_device.h"

namespace vios::backend {

class MemoryBackend final : public BlockDevice {
 public:
  explicit MemoryBackend(uint64_t size_bytes, uint32_t block_size = 512,
                         bool supports_discard = true);

  uint64_t SizeBytes() const override;
  uint32_t BlockSize() const override { return block_size_; }
  bool SupportsDiscard() const override { return supports_discard_; }
  void Submit(IoRequest* request) override;
  std::string Describe() const override { return "memory"; }

  // Resize changes the size (contents beyond the old size read as zeroes).
  void Resize(uint64_t size_bytes);
  // FailNext makes the next submitted request complete with result (a negative errno).
  void FailNext(int result);
  // Counts of submitted requests by operation, for tests.
  uint64_t count(IoOp op) const;
  // Direct access for tests.
  std::vector<uint8_t> Read(uint64_t offset, uint64_t length) const;

 private:
  mutable std::mutex mutex_;
  std::vector<uint8_t> data_;
  const uint32_t block_size_;
  const bool supports_discard_;
  int fail_next_ = 0;
  uint64_t counts_[5] = {};
};

}  // namespace vios::backend
