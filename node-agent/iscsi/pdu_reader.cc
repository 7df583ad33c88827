// PduReader: parse PDUs out of a linear receive buffer with compaction. Limits are checked on the
// BHS before waiting for the data segment, so an oversized length never makes us buffer it.
#include "node-agent/iscsi/pdu_reader.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "node-agent/iscsi/crc32c.h"

namespace vios::iscsi {
namespace {

// Largest AHS: TotalAHSLength is one byte counting 4-byte words (RFC 7143 §11.2.1.5).
constexpr size_t kMaxAhs = 255 * 4;
// Bytes a single read may pull in beyond one PDU, so several small PDUs arrive with one recv.
constexpr size_t kSlack = 64 * 1024;

size_t BufferFor(uint32_t max_data_segment) {
  return kBhsLength + kMaxAhs + kDigestLength + max_data_segment + 3 + kDigestLength + kSlack;
}

}  // namespace

PduReader::PduReader() { SetLimits(8192, false, false); }

void PduReader::SetLimits(uint32_t max_data_segment, bool header_digest, bool data_digest) {
  max_data_segment_ = max_data_segment;
  header_digest_ = header_digest;
  data_digest_ = data_digest;
  size_t need = BufferFor(max_data_segment);
  if (need > capacity_) {
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(need);
    if (end_ > begin_) std::memcpy(bigger.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    buffer_ = std::move(bigger);
    capacity_ = need;
  }
}

void PduReader::MakeRoom() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && capacity_ - end_ < kSlack) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
}

long PduReader::Fill(int fd) {
  MakeRoom();
  if (end_ == capacity_) return -1;  // Full: the caller must parse first.
  ssize_t n = recv(fd, buffer_.get() + end_, capacity_ - end_, 0);
  if (n > 0) {
    end_ += static_cast<size_t>(n);
    return n;
  }
  if (n == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
  return -2;
}

size_t PduReader::Feed(std::span<const uint8_t> bytes) {
  MakeRoom();
  size_t n = std::min(bytes.size(), capacity_ - end_);
  std::memcpy(buffer_.get() + end_, bytes.data(), n);
  end_ += n;
  return n;
}

PduReader::Result PduReader::Next(Pdu* pdu) {
  MakeRoom();
  size_t available = end_ - begin_;
  if (available < kBhsLength) return Result::kNeedMore;
  const uint8_t* p = buffer_.get() + begin_;
  std::memcpy(pdu->bhs.bytes.data(), p, kBhsLength);
  size_t ahs_length = static_cast<size_t>(pdu->bhs.total_ahs_words()) * 4;
  uint32_t dsl = pdu->bhs.data_segment_length();
  if (dsl > max_data_segment_) return Result::kOversize;
  size_t header = kBhsLength + ahs_length + (header_digest_ ? kDigestLength : 0);
  size_t data_padded = dsl + PadLength(dsl);
  size_t total = header + data_padded + (data_digest_ && dsl > 0 ? kDigestLength : 0);
  if (available < total) return Result::kNeedMore;
  if (header_digest_) {
    uint32_t want = Crc32c(p, kBhsLength + ahs_length);
    if (LoadLe32(p + kBhsLength + ahs_length) != want) return Result::kBadHeaderDigest;
  }
  pdu->ahs = std::span<const uint8_t>(p + kBhsLength, ahs_length);
  pdu->data = std::span<const uint8_t>(p + header, dsl);
  pdu->data_digest_ok = true;
  if (data_digest_ && dsl > 0) {
    uint32_t want = Crc32c(p + header, data_padded);
    pdu->data_digest_ok = LoadLe32(p + header + data_padded) == want;
  }
  begin_ += total;
  return Result::kPdu;
}

}  // namespace vios::iscsi
