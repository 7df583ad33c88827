// CRC32C (Castagnoli) for iSCSI header and data digests (RFC 7143 §13.1, RFC 3720 Appendix B.4).
// Software slicing-by-8; tables are built at compile time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vios::iscsi {

// Crc32cUpdate continues a CRC over data. Start with kCrc32cInit and finish with Crc32cFinish;
// Crc32c() does all three for one buffer.
constexpr uint32_t kCrc32cInit = 0xffffffffu;
uint32_t Crc32cUpdate(uint32_t crc, const uint8_t* data, size_t length);
inline uint32_t Crc32cFinish(uint32_t crc) { return crc ^ 0xffffffffu; }
inline uint32_t Crc32c(const uint8_t* data, size_t length) {
  return Crc32cFinish(Crc32cUpdate(kCrc32cInit, data, length));
}

}  // namespace vios::iscsi
