// SyncBlockDevice: blocking, byte-granular I/O over an asynchronous backend::BlockDevice.
//
// The FUSE export answers each kernel request on one of libfuse's worker threads, so blocking is
// the natural shape there: submit one IoRequest, wait on a condition variable for IoDone. FUSE
// callers (a loop device, cp, an editor) may use any byte offset and length, while a BlockDevice
// takes whole blocks: unaligned edges go through a per-thread bounce buffer, and partial-block
// writes do read-modify-write under an exclusive lock so they cannot lose a concurrent aligned
// write to the same block (aligned writes take the lock shared and never wait on each other).
//
//   SyncBlockDevice io(device);
//   int rc = io.WriteAt(offset, bytes);   // 0 or -errno
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <span>

#include "node-agent/backend/block_device.h"

namespace vios::fuse {

class SyncBlockDevice {
 public:
  explicit SyncBlockDevice(backend::BlockDevice* device);

  uint64_t SizeBytes() const { return device_->SizeBytes(); }
  uint32_t BlockSize() const { return block_size_; }
  backend::BlockDevice* device() const { return device_; }

  // Execute submits request (completion is set here) and waits for it; returns request->result.
  int Execute(backend::IoRequest* request);

  // ReadAt reads buffer.size() bytes at offset; the range must lie inside the device.
  int ReadAt(uint64_t offset, std::span<uint8_t> buffer);
  // WriteAt writes data at offset; the range must lie inside the device.
  int WriteAt(uint64_t offset, std::span<const uint8_t> data);
  // ZeroRange makes [offset, offset+length) read as zeroes. With deallocate and a device that
  // supports it, whole blocks are discarded (SBC-3 thin provisioning); edges are written as zeroes.
  int ZeroRange(uint64_t offset, uint64_t length, bool deallocate);
  // Flush makes completed writes durable.
  int Flush();

 private:
  int BlockOp(backend::IoOp op, uint64_t offset, std::span<uint8_t> read,
              std::span<const uint8_t> write, uint64_t length);
  // Patch rewrites bytes [offset, offset+data.size()) inside one block-aligned window with
  // read-modify-write; data empty means zeroes of length `length`.
  int Patch(uint64_t offset, std::span<const uint8_t> data, uint64_t length);

  backend::BlockDevice* device_;
  uint32_t block_size_;
  std::shared_mutex rmw_mutex_;  // Shared: aligned writes. Exclusive: read-modify-write.
};

}  // namespace vios::fuse
