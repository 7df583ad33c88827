// Peer I/O request checks and errno/status mapping shared by both ends of ExecuteIo
// (proto/peer.proto, DESIGN.md §6).
//
// The server checks every field a peer sends before anything reaches a backend (DESIGN.md §10:
// input from a peer never crashes the process); the client maps a failed call to the errno the
// router treats as a path error, so a peer failing mid-request means a retry on another path.
//
//   std::string error = ValidateIo(request, *device, kDefaultMaxIoBytes);
//   if (!error.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "node-agent/backend/block_device.h"
#include "proto/peer.pb.h"

namespace vios::agent::peer {

// kDefaultMaxIoBytes caps one ExecuteIo's data: the SCSI layer's MAXIMUM TRANSFER LENGTH (VPD B0,
// 8 MiB), so one initiator command never needs splitting.
inline constexpr uint64_t kDefaultMaxIoBytes = 8u << 20;
// kMessageOverhead is room for the non-data fields on top of the data in a gRPC message.
inline constexpr int kMessageOverhead = 64 << 10;

// ValidateIo returns "" when request can run on device, else a message naming the bad field.
std::string ValidateIo(const vios::peer::v1::IoRequest& request, const backend::BlockDevice& device,
                       uint64_t max_io_bytes);
// ValidateIoFields is ValidateIo on the fields themselves (the data channel's binary frames).
std::string ValidateIoFields(vios::peer::v1::IoOp op, uint64_t offset, uint64_t length,
                             uint64_t data_size, const backend::BlockDevice& device,
                             uint64_t max_io_bytes);

// ToBackendOp / ToProtoOp convert operations; ToBackendOp returns false for UNSPECIFIED/unknown.
bool ToBackendOp(vios::peer::v1::IoOp op, backend::IoOp* out);
vios::peer::v1::IoOp ToProtoOp(backend::IoOp op);

// TakeSlot returns the index of a free slot of a request table (peer paths' in-flight requests):
// one from the free list, else a new one appended.
template <typename Slot>
uint32_t TakeSlot(std::vector<Slot>* slots, std::vector<uint32_t>* free) {
  if (free->empty()) {
    slots->emplace_back();
    return static_cast<uint32_t>(slots->size() - 1);
  }
  const uint32_t index = free->back();
  free->pop_back();
  return index;
}

// ErrnoForStatus maps a failed ExecuteIo call to a negative errno. Transport failures
// (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, NOT_FOUND: the peer does not serve that backend)
// become path errors (router::IsPathError); a refused request (INVALID_ARGUMENT...) is -EINVAL.
int ErrnoForStatus(const grpc::Status& status);

}  // namespace vios::agent::peer
