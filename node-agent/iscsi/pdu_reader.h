// Receive state machine of one connection (RFC 7143 §11.2): await the BHS, then AHS and header
// digest, then data segment, padding and data digest. Bytes are read from a non-blocking socket
// into one buffer allocated per connection; a complete PDU is handed out as views into it, so the
// receive path copies nothing and allocates nothing in steady state.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "node-agent/iscsi/pdu_wire.h"

namespace vios::iscsi {

// Pdu is a received PDU. ahs and data point into the reader's buffer and stay valid until the
// next call to PduReader::Next or Fill.
struct Pdu {
  Bhs bhs;
  std::span<const uint8_t> ahs;
  std::span<const uint8_t> data;  // Without padding.
  bool data_digest_ok = true;
};

class PduReader {
 public:
  enum class Result {
    kNeedMore,         // Not a whole PDU buffered yet.
    kPdu,              // *pdu holds one PDU.
    kBadHeaderDigest,  // PDU boundaries are lost: the connection must close (§7.8 at ERL0).
    kOversize,         // Data segment above our MaxRecvDataSegmentLength; pdu->bhs is valid.
  };

  PduReader();

  // SetLimits: largest data segment accepted and the digests in force. Grows the buffer once.
  void SetLimits(uint32_t max_data_segment, bool header_digest, bool data_digest);

  // Fill reads what the socket has. Returns bytes read (>0), 0 at EOF, -1 for EAGAIN, -2 on error.
  long Fill(int fd);
  // Feed appends bytes (tests, fuzzing). Returns how many fit.
  size_t Feed(std::span<const uint8_t> bytes);

  // Next parses the next PDU from buffered bytes.
  Result Next(Pdu* pdu);

  size_t buffered() const { return end_ - begin_; }

 private:
  void MakeRoom();

  std::unique_ptr<uint8_t[]> buffer_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // First unparsed byte.
  size_t end_ = 0;    // One past the last buffered byte.
  uint32_t max_data_segment_ = 8192;
  bool header_digest_ = false;
  bool data_digest_ = false;
};

}  // namespace vios::iscsi
