// Receive state machine: byte-at-a-time delivery, padding, digests, oversize and bad AHS lengths.
#include "node-agent/iscsi/pdu_reader.h"

#include <gtest/gtest.h>

#include <vector>

#include "node-agent/iscsi/crc32c.h"

namespace vios::iscsi {
namespace {

std::vector<uint8_t> MakePdu(uint32_t data_length, bool header_digest, bool data_digest,
                             uint8_t ahs_words = 0) {
  Bhs bhs;
  bhs.SetOpcode(Opcode::kNopOut);
  bhs.bytes[4] = ahs_words;
  bhs.SetDataSegmentLength(data_length);
  bhs.SetItt(0x11223344);
  std::vector<uint8_t> out(bhs.bytes.begin(), bhs.bytes.end());
  out.resize(out.size() + ahs_words * 4u, 0xa5);
  if (header_digest) {
    out.resize(out.size() + 4);
    StoreLe32(&out[out.size() - 4], Crc32c(out.data(), out.size() - 4));
  }
  size_t data_start = out.size();
  for (uint32_t i = 0; i < data_length; ++i) out.push_back(static_cast<uint8_t>(i));
  out.resize(out.size() + PadLength(data_length), 0);
  if (data_digest && data_length > 0) {
    uint32_t crc = Crc32c(&out[data_start], out.size() - data_start);
    out.resize(out.size() + 4);
    StoreLe32(&out[out.size() - 4], crc);
  }
  return out;
}

TEST(PduReaderTest, AssemblesPduFedOneByteAtATime) {
  PduReader reader;
  auto bytes = MakePdu(5, false, false);
  Pdu pdu;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    reader.Feed({&bytes[i], 1});
    EXPECT_EQ(reader.Next(&pdu), PduReader::Result::kNeedMore) << i;
  }
  reader.Feed({&bytes.back(), 1});
  ASSERT_EQ(reader.Next(&pdu), PduReader::Result::kPdu);
  EXPECT_EQ(pdu.bhs.itt(), 0x11223344u);
  ASSERT_EQ(pdu.data.size(), 5u);
  EXPECT_EQ(pdu.data[4], 4);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(PduReaderTest, ParsesBackToBackPdusWithDigestsAndAhs) {
  PduReader reader;
  reader.SetLimits(65536, true, true);
  auto a = MakePdu(4096, true, true, 2);
  auto b = MakePdu(0, true, true);
  reader.Feed(a);
  reader.Feed(b);
  Pdu pdu;
  ASSERT_EQ(reader.Next(&pdu), PduReader::Result::kPdu);
  EXPECT_EQ(pdu.ahs.size(), 8u);
  EXPECT_EQ(pdu.data.size(), 4096u);
  EXPECT_TRUE(pdu.data_digest_ok);
  ASSERT_EQ(reader.Next(&pdu), PduReader::Result::kPdu);
  EXPECT_EQ(pdu.data.size(), 0u);
  EXPECT_EQ(reader.Next(&pdu), PduReader::Result::kNeedMore);
}

TEST(PduReaderTest, DetectsCorruptHeaderAndDataDigests) {
  PduReader reader;
  reader.SetLimits(65536, true, true);
  auto bytes = MakePdu(100, true, true);
  bytes.back() ^= 1;  // Data digest.
  reader.Feed(bytes);
  Pdu pdu;
  ASSERT_EQ(reader.Next(&pdu), PduReader::Result::kPdu);
  EXPECT_FALSE(pdu.data_digest_ok);

  PduReader reader2;
  reader2.SetLimits(65536, true, false);
  auto bytes2 = MakePdu(0, true, false);
  bytes2[20] ^= 0x80;  // Inside the BHS.
  reader2.Feed(bytes2);
  EXPECT_EQ(reader2.Next(&pdu), PduReader::Result::kBadHeaderDigest);
}

TEST(PduReaderTest, RefusesOversizedDataSegmentBeforeBufferingIt) {
  PduReader reader;
  reader.SetLimits(8192, false, false);
  Bhs bhs;
  bhs.SetDataSegmentLength(8193);
  reader.Feed(bhs.bytes);
  Pdu pdu;
  EXPECT_EQ(reader.Next(&pdu), PduReader::Result::kOversize);
}

TEST(PduReaderTest, WireHelpersAreBigEndian) {
  uint8_t b[8] = {};
  StoreBe32(b, 0x01020304);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(LoadBe32(b), 0x01020304u);
  StoreBe24(b, 0xabcdef);
  EXPECT_EQ(LoadBe24(b), 0xabcdefu);
  StoreBe64(b, 0x0102030405060708ull);
  EXPECT_EQ(LoadBe64(b), 0x0102030405060708ull);
  EXPECT_TRUE(SnLess(0xffffffff, 0));
  EXPECT_FALSE(SnLess(5, 5));
  EXPECT_TRUE(SnLessEq(5, 5));
}

}  // namespace
}  // namespace vios::iscsi
