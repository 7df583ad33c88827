// Peer I/O request checks and mappings (peer_io.h).
#include "node-agent/peer/peer_io.h"

#include <cerrno>

namespace vios::agent::peer {

bool ToBackendOp(vios::peer::v1::IoOp op, backend::IoOp* out) {
  switch (op) {
    case vios::peer::v1::IO_OP_READ:
      *out = backend::IoOp::kRead;
      return true;
    case vios::peer::v1::IO_OP_WRITE:
      *out = backend::IoOp::kWrite;
      return true;
    case vios::peer::v1::IO_OP_FLUSH:
      *out = backend::IoOp::kFlush;
      return true;
    case vios::peer::v1::IO_OP_WRITE_ZEROES:
      *out = backend::IoOp::kWriteZeroes;
      return true;
    case vios::peer::v1::IO_OP_DISCARD:
      *out = backend::IoOp::kDiscard;
      return true;
    default:
      return false;
  }
}

vios::peer::v1::IoOp ToProtoOp(backend::IoOp op) {
  switch (op) {
    case backend::IoOp::kRead:
      return vios::peer::v1::IO_OP_READ;
    case backend::IoOp::kWrite:
      return vios::peer::v1::IO_OP_WRITE;
    case backend::IoOp::kFlush:
      return vios::peer::v1::IO_OP_FLUSH;
    case backend::IoOp::kWriteZeroes:
      return vios::peer::v1::IO_OP_WRITE_ZEROES;
    case backend::IoOp::kDiscard:
      return vios::peer::v1::IO_OP_DISCARD;
  }
  return vios::peer::v1::IO_OP_UNSPECIFIED;
}

std::string ValidateIo(const vios::peer::v1::IoRequest& request, const backend::BlockDevice& device,
                       uint64_t max_io_bytes) {
  return ValidateIoFields(request.op(), request.offset(), request.length(), request.data().size(),
                          device, max_io_bytes);
}

std::string ValidateIoFields(vios::peer::v1::IoOp proto_op, uint64_t offset, uint64_t length,
                             uint64_t data_size, const backend::BlockDevice& device,
                             uint64_t max_io_bytes) {
  backend::IoOp op;
  if (!ToBackendOp(proto_op, &op)) {
    return "op: unknown operation " + std::to_string(static_cast<int>(proto_op));
  }
  const uint64_t bs = device.BlockSize();
  const uint64_t size = device.SizeBytes();
  if (op == backend::IoOp::kFlush) {
    if (length != 0 || data_size != 0) {
      return "length: a flush carries no range or data";
    }
    return "";
  }
  if (op != backend::IoOp::kWrite && data_size != 0) {
    return "data: only a write carries data";
  }
  if (op == backend::IoOp::kWrite && length != data_size) {
    return "length: " + std::to_string(length) + " differs from the data size " +
           std::to_string(data_size);
  }
  if (length == 0) {
    return "length: must not be 0";
  }
  if (offset % bs != 0) {
    return "offset: " + std::to_string(offset) + " is not a multiple of the block size " +
           std::to_string(bs);
  }
  if (length % bs != 0) {
    return "length: " + std::to_string(length) + " is not a multiple of the block size " +
           std::to_string(bs);
  }
  if ((op == backend::IoOp::kRead || op == backend::IoOp::kWrite) && length > max_io_bytes) {
    return "length: " + std::to_string(length) + " exceeds the per-request limit of " +
           std::to_string(max_io_bytes) + " bytes";
  }
  if (offset > size || length > size - offset) {
    return "offset: range [" + std::to_string(offset) + ", +" + std::to_string(length) +
           ") ends beyond the device size " + std::to_string(size);
  }
  return "";
}

int ErrnoForStatus(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return -ETIMEDOUT;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
      return -ECONNRESET;
    case grpc::StatusCode::NOT_FOUND:           // the peer does not serve this backend
    case grpc::StatusCode::UNIMPLEMENTED:       // an agent without ExecuteIo
    case grpc::StatusCode::RESOURCE_EXHAUSTED:  // the peer is shedding load
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return -ENOTCONN;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return -EINVAL;
    default:
      return -EIO;
  }
}

}  // namespace vios::agent::peer
