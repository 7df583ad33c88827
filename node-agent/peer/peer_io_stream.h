// The serving end of IoStream (proto/peer.proto, DESIGN.md §6): many I/Os of one peer path over
// one long-lived bidirectional gRPC stream instead of one unary ExecuteIo call each.
//
// One reactor per stream (gRPC's callback API). Each IoBatch read from the stream is kept alive
// until every write in it completed, because the backend writes straight from the message's
// payload (no copy). Every request is checked like ExecuteIo (ValidateIo) before a backend sees
// it; a refused one is answered with an errno (EINVAL / ENOTCONN) on the stream, which stays up.
// Reads land in a pooled IoResponse's own buffer and are swapped, not copied, into the answer
// batch. Answers that complete while a write is on the wire are sent together in the next
// IoResultBatch (natural batching under load, one message per answer when idle). The stream is
// finished only once no request of it is inside a backend, so devices and buffers outlive
// every I/O; the reactor deletes itself in OnDone.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <grpcpp/support/server_callback.h>

#include "node-agent/backend/block_device.h"
#include "proto/peer.pb.h"

namespace vios::agent::peer {

// IoStreamHost is what a stream needs from the peer server.
class IoStreamHost {
 public:
  virtual ~IoStreamHost() = default;
  // LocalDevice: the backend's LOCAL device, or null when this agent has no such backend.
  virtual backend::BlockDevice* LocalDevice(const std::string& pool,
                                            const std::string& backend) = 0;
  virtual uint64_t MaxIoBytes() const = 0;
  // IoStarted / IoFinished bracket every request inside a backend (PeerServer::Stop waits).
  virtual void IoStarted() = 0;
  virtual void IoFinished() = 0;
  virtual void IoRefused(const std::string& identity, const std::string& error) = 0;
  // Served: the executed-request counter of a caller identity.
  virtual std::atomic<uint64_t>& Served(const std::string& identity) = 0;
};

// kMaxBatchBytes: payload bytes after which a batch is not extended (one bigger request still
// travels alone); keeps messages well under the channel's message size limit.
inline constexpr uint64_t kMaxBatchBytes = 1u << 20;

// NewIoStreamReactor starts serving one IoStream call. A non-OK refuse finishes it at once
// (e.g. UNIMPLEMENTED when the agent serves no I/O for peers).
grpc::ServerBidiReactor<vios::peer::v1::IoBatch, vios::peer::v1::IoResultBatch>* NewIoStreamReactor(
    IoStreamHost* host, std::string identity, const grpc::Status& refuse);

}  // namespace vios::agent::peer
