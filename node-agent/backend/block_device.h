// BlockDevice: asynchronous byte-addressed block I/O, the one interface below the SCSI layer.
//
// Backends (file, device, iscsi) implement it; so does a pool volume (extents over backends,
// through the router) and so will a peer path. The SCSI layer and the FUSE export only ever see a
// BlockDevice. Requests are caller-owned and reusable: nothing here allocates per I/O.
//
//   IoRequest req;
//   req.op = IoOp::kRead; req.offset = lba * 512; req.read_buffer = buf; req.completion = this;
//   device->Submit(&req);   // later: IoDone(&req) with req.result == 0 or -errno
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace vios::backend {

enum class IoOp : uint8_t {
  kRead,
  kWrite,
  kFlush,        // Make earlier completed writes durable.
  kWriteZeroes,  // Zero [offset, offset+length); may deallocate (thin provisioning).
  kDiscard,      // Deallocate [offset, offset+length); later reads return zeroes.
};

class IoRequest;

// IoCompletion::IoDone is called exactly once per submitted request, on any thread.
class IoCompletion {
 public:
  virtual ~IoCompletion() = default;
  virtual void IoDone(IoRequest* request) = 0;
};

class IoRequest {
 public:
  IoOp op = IoOp::kRead;
  uint64_t offset = 0;                    // Bytes; multiple of the device's block size.
  uint64_t length = 0;                    // Bytes, for kWriteZeroes / kDiscard.
  std::span<uint8_t> read_buffer;         // kRead: length is read_buffer.size().
  std::span<const uint8_t> write_buffer;  // kWrite: length is write_buffer.size().
  IoCompletion* completion = nullptr;
  void* user = nullptr;  // Free for the submitter.
  int result = 0;        // 0 on success, -errno on failure.

  uint64_t ByteLength() const {
    switch (op) {
      case IoOp::kRead:
        return read_buffer.size();
      case IoOp::kWrite:
        return write_buffer.size();
      default:
        return length;
    }
  }
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  // Size in bytes and logical block size (512 or 4096).
  virtual uint64_t SizeBytes() const = 0;
  virtual uint32_t BlockSize() const = 0;
  // Whether kDiscard really deallocates (drives LBPU/LBPWS in VPD B2, SBC-3 §6.6.4).
  virtual bool SupportsDiscard() const = 0;
  // Submit starts request; IoDone may run before Submit returns.
  virtual void Submit(IoRequest* request) = 0;
  // A short identity for logs and metrics ("file:/var/lib/vios/pool0.img").
  virtual std::string Describe() const = 0;
};

}  // namespace vios::backend
