// Tests for dispatch, CDB validation, INQUIRY and READ CAPACITY of LogicalUnit.
#include "node-agent/scsi/logical_unit.h"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

class LogicalUnitTest : public ::testing::Test {
 protected:
  LogicalUnitTest() : disk_(8 << 20), lu_(&disk_, Config()) {}
  static LogicalUnitConfig Config() {
    LogicalUnitConfig c;
    c.volume_id = "pvc-0123";
    c.product = "TESTDISK";
    return c;
  }
  backend::MemoryBackend disk_;
  LogicalUnit lu_;
};

TEST_F(LogicalUnitTest, UnknownOpcodeIsInvalidCommandOperationCode) {
  TestTask t({0xC7});
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x20, 0x00);
}

TEST_F(LogicalUnitTest, UnknownServiceActionIsInvalidFieldInCdb) {
  TestTask t({0x9E, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 32);
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, ReservedBitRejectedWithFieldPointer) {
  // TEST UNIT READY with a reserved bit in byte 2.
  TestTask t({0x00, 0, 0x10, 0, 0, 0});
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
  EXPECT_EQ(t.task.sense[15], 0x80 | 0x40 | 0x08 | 4);  // SKSV, C/D, BPV, bit 4.
  EXPECT_EQ(t.task.sense[17], 2);                       // Byte 2.
}

TEST_F(LogicalUnitTest, NacaInControlByteRejected) {
  TestTask t({0x00, 0, 0, 0, 0, 0x04});
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, RdprotectRejected) {
  TestTask t({0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0}, 512);
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST(OpcodeTableTest, EveryEntryIsFoundAndSameOpcodesAreAdjacent) {
  const auto table = LogicalUnit::Opcodes();
  std::set<uint8_t> closed;
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& e = table[i];
    if (i > 0 && table[i - 1].opcode != e.opcode) {
      closed.insert(table[i - 1].opcode);
    }
    EXPECT_FALSE(closed.count(e.opcode)) << "opcode " << int(e.opcode) << " split in the table";
    std::array<uint8_t, 16> cdb{};
    cdb[0] = e.opcode;
    cdb[1] = static_cast<uint8_t>(e.service_action);
    bool bad = false;
    EXPECT_EQ(LogicalUnit::FindOpcode(cdb.data(), &bad), &e) << e.name;
    EXPECT_EQ(e.usage[0], e.opcode) << e.name;
    EXPECT_EQ(e.usage[e.cdb_length - 1], 0) << e.name << ": control byte";
  }
}

TEST_F(LogicalUnitTest, TestUnitReadyIsGood) {
  TestTask t({0x00, 0, 0, 0, 0, 0});
  t.Run(lu_);
  EXPECT_GOOD(t);
}

TEST_F(LogicalUnitTest, StandardInquiry) {
  TestTask t({0x12, 0, 0, 0, 96, 0}, 96);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 96u);
  EXPECT_EQ(d[0], 0x00);
  EXPECT_EQ(d[2], 0x06);  // SPC-4
  EXPECT_EQ(d[3] & 0x0F, 2);
  EXPECT_EQ(d[4], 91);
  EXPECT_EQ(std::string(d.begin() + 8, d.begin() + 16), "VIOS    ");
  EXPECT_EQ(std::string(d.begin() + 16, d.begin() + 32), "TESTDISK        ");
}

TEST_F(LogicalUnitTest, InquiryTruncatesToAllocationLength) {
  TestTask t({0x12, 0, 0, 0, 5, 0}, 96);
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(t.task.data_in_length, 5u);
}

TEST_F(LogicalUnitTest, InquiryPageCodeWithoutEvpdRejected) {
  TestTask t({0x12, 0, 0x80, 0, 96, 0}, 96);
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, SupportedVpdPagesListsEveryPageThatAnswers) {
  TestTask t({0x12, 1, 0x00, 0, 255, 0}, 255);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_GE(d.size(), 4u);
  const size_t n = d[3];
  ASSERT_EQ(n, 6u);
  for (size_t i = 0; i < n; ++i) {
    TestTask p({0x12, 1, d[4 + i], 0x01, 0, 0}, 256);
    p.Run(lu_);
    EXPECT_GOOD(p);
    EXPECT_EQ(p.DataIn()[1], d[4 + i]);
  }
  TestTask bad({0x12, 1, 0x86, 0x01, 0, 0}, 256);
  bad.Run(lu_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, DeviceIdentificationHasNaaAndPortDesignators) {
  TestTask t({0x12, 1, 0x83, 0x01, 0, 0}, 256);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  const size_t length = 4 + ((d[2] << 8) | d[3]);
  ASSERT_EQ(d.size(), length);
  std::set<int> types;
  bool naa6 = false;
  for (size_t off = 4; off + 4 <= length; off += 4 + d[off + 3]) {
    const int type = d[off + 1] & 0x0F;
    types.insert(type);
    if (type == 3) {
      naa6 = (d[off + 4] >> 4) == 6 && d[off + 3] == 16;
    }
  }
  EXPECT_TRUE(naa6);
  EXPECT_TRUE(types.count(1));  // T10 vendor id
  EXPECT_TRUE(types.count(4));  // relative target port
  EXPECT_TRUE(types.count(8));  // SCSI name string
  // Stable per volume id, different for another.
  backend::MemoryBackend other_disk(1 << 20);
  LogicalUnitConfig c;
  c.volume_id = "pvc-other";
  LogicalUnit other(&other_disk, c);
  TestTask t2({0x12, 1, 0x83, 0x01, 0, 0}, 256);
  t2.Run(other);
  const auto d2 = t2.DataIn();
  EXPECT_NE(std::vector<uint8_t>(d.begin() + 8, d.begin() + 24),
            std::vector<uint8_t>(d2.begin() + 8, d2.begin() + 24));
}

TEST_F(LogicalUnitTest, BlockLimitsAndProvisioningPages) {
  TestTask b0({0x12, 1, 0xB0, 0, 64, 0}, 64);
  b0.Run(lu_);
  EXPECT_GOOD(b0);
  auto d = b0.DataIn();
  ASSERT_EQ(d.size(), 64u);
  EXPECT_EQ(d[3], 0x3C);
  EXPECT_EQ(wire::Load32(&d[8]), (8u << 20) / 512);  // MAXIMUM TRANSFER LENGTH
  EXPECT_EQ(wire::Load32(&d[20]), 1u << 20);         // MAXIMUM UNMAP LBA COUNT (<= 1M blocks)
  EXPECT_EQ(wire::Load32(&d[24]), 256u);
  EXPECT_EQ(wire::Load64(&d[36]), 0xFFFFu);  // MAXIMUM WRITE SAME LENGTH
  TestTask b2({0x12, 1, 0xB2, 0, 64, 0}, 64);
  b2.Run(lu_);
  auto p = b2.DataIn();
  ASSERT_EQ(p.size(), 8u);
  EXPECT_EQ(p[5] & 0xE0, 0xE0);  // LBPU, LBPWS, LBPWS10
  EXPECT_EQ(p[6] & 0x07, 2);     // thin
  TestTask b1({0x12, 1, 0xB1, 0, 64, 0}, 64);
  b1.Run(lu_);
  EXPECT_EQ(wire::Load16(&b1.DataIn()[4]), 1);  // non-rotating
}

TEST_F(LogicalUnitTest, ReadCapacity10And16) {
  TestTask t({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8);
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(wire::Load32(t.DataIn().data()), (8u << 20) / 512 - 1);
  EXPECT_EQ(wire::Load32(t.DataIn().data() + 4), 512u);

  TestTask t16({0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 32);
  t16.Run(lu_);
  EXPECT_GOOD(t16);
  auto d = t16.DataIn();
  ASSERT_EQ(d.size(), 32u);
  EXPECT_EQ(wire::Load64(d.data()), (8u << 20) / 512 - 1);
  EXPECT_EQ(d[13], 3);            // 8 logical blocks per 4 KiB physical block
  EXPECT_EQ(d[14] & 0xC0, 0xC0);  // LBPME, LBPRZ
}

TEST_F(LogicalUnitTest, ReadCapacity10LbaWithoutPmiRejected) {
  TestTask t({0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 8);
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST(LogicalUnitNoDiscardTest, ProvisioningBitsFollowTheBackend) {
  backend::MemoryBackend disk(1 << 20, 512, /*supports_discard=*/false);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  TestTask t16({0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 32);
  t16.Run(lu);
  EXPECT_EQ(t16.DataIn()[14] & 0x80, 0);
  TestTask b2({0x12, 1, 0xB2, 0, 64, 0}, 64);
  b2.Run(lu);
  EXPECT_EQ(b2.DataIn()[5], 0);
}

TEST_F(LogicalUnitTest, RequestSenseWithoutConditionIsNoSense) {
  TestTask t({0x03, 0, 0, 0, 18, 0}, 18);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 18u);
  EXPECT_EQ(d[0], 0x70);
  EXPECT_EQ(d[2] & 0x0F, 0);
}

TEST_F(LogicalUnitTest, StartStopAndPreventAllowAccepted) {
  TestTask s({0x1B, 0, 0, 0, 0x01, 0});
  s.Run(lu_);
  EXPECT_GOOD(s);
  TestTask p({0x1E, 0, 0, 0, 0x01, 0});
  p.Run(lu_);
  EXPECT_GOOD(p);
}

TEST_F(LogicalUnitTest, PersistentReserveWithoutPolicyIsInvalidOpcode) {
  TestTask t({0x5E, 0x00, 0, 0, 0, 0, 0, 0, 8, 0}, 8);
  t.Run(lu_);
  EXPECT_SENSE(t, SenseKey::kIllegalRequest, 0x20, 0x00);
  TestTask r({0x16, 0, 0, 0, 0, 0});
  r.Run(lu_);
  EXPECT_SENSE(r, SenseKey::kIllegalRequest, 0x20, 0x00);
}

TEST_F(LogicalUnitTest, PreFetchChecksTheRangeOnly) {
  TestTask p10({0x34, 0, 0, 0, 0, 0, 0, 0, 8, 0});
  p10.Run(lu_);
  EXPECT_GOOD(p10);
  TestTask p16({0x90, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // IMMED, to the end
  p16.Run(lu_);
  EXPECT_GOOD(p16);
  const uint64_t end = lu_.BlockCount();
  TestTask beyond({0x90, 0, 0, 0, 0, 0, static_cast<uint8_t>(end >> 24),
                   static_cast<uint8_t>(end >> 16), static_cast<uint8_t>(end >> 8),
                   static_cast<uint8_t>(end), 0, 0, 0, 1, 0, 0});
  beyond.Run(lu_);
  EXPECT_SENSE(beyond, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask reserved({0x34, 0x01, 0, 0, 0, 0, 0, 0, 1, 0});  // bit 0 of byte 1 is reserved
  reserved.Run(lu_);
  EXPECT_SENSE(reserved, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(LogicalUnitTest, ReadDefectDataReturnsAnEmptyList) {
  TestTask r10({0x37, 0, 0x18 | 0x05, 0, 0, 0, 0, 0, 64, 0}, 64);  // PLIST+GLIST, format 5
  r10.Run(lu_);
  EXPECT_GOOD(r10);
  const std::vector<uint8_t> h10 = {0, 0x1D, 0, 0};
  EXPECT_EQ(r10.DataIn(), h10);
  TestTask r12({0xB7, 0x08 | 0x04, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 64);
  r12.Run(lu_);
  EXPECT_GOOD(r12);
  const std::vector<uint8_t> h12 = {0, 0x0C, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(r12.DataIn(), h12);
}

}  // namespace
}  // namespace vios::scsi
