// CRC32C against the iSCSI test vectors of RFC 3720 Appendix B.4.
#include "node-agent/iscsi/crc32c.h"

#include <gtest/gtest.h>

#include <array>
#include <numeric>

namespace vios::iscsi {
namespace {

TEST(Crc32cTest, MatchesRfc3720Vectors) {
  std::array<uint8_t, 32> buf{};
  buf.fill(0x00);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x8a9136aau);
  buf.fill(0xff);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x62a8ab43u);
  std::iota(buf.begin(), buf.end(), 0);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x46dd794eu);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x113fdb5cu);
}

TEST(Crc32cTest, MatchesRfc3720ReadCommandPdu) {
  const uint8_t pdu[48] = {0x01, 0xc0, 0, 0, 0, 0, 0,    0, 0,    0, 0, 0,    0, 0, 0, 0,
                           0x14, 0,    0, 0, 0, 0, 0x04, 0, 0,    0, 0, 0x14, 0, 0, 0, 0x18,
                           0x28, 0,    0, 0, 0, 0, 0,    0, 0x02, 0, 0, 0,    0, 0, 0, 0};
  EXPECT_EQ(Crc32c(pdu, sizeof(pdu)), 0xd9963a56u);
}

TEST(Crc32cTest, IncrementalEqualsOneShotAtEveryAlignment) {
  std::array<uint8_t, 100> buf{};
  std::iota(buf.begin(), buf.end(), 7);
  uint32_t whole = Crc32c(buf.data(), buf.size());
  for (size_t split = 0; split <= buf.size(); ++split) {
    uint32_t crc = Crc32cUpdate(kCrc32cInit, buf.data(), split);
    crc = Crc32cUpdate(crc, buf.data() + split, buf.size() - split);
    EXPECT_EQ(Crc32cFinish(crc), whole) << split;
  }
}

}  // namespace
}  // namespace vios::iscsi
