// Tests for UNMAP, WRITE SAME (with UNMAP and NDOB) and GET LBA STATUS.
#include <gtest/gtest.h>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

std::vector<uint8_t> UnmapList(std::vector<std::pair<uint64_t, uint32_t>> ranges) {
  std::vector<uint8_t> v(8 + 16 * ranges.size());
  wire::Store16(v.data(), static_cast<uint16_t>(v.size() - 2));
  wire::Store16(v.data() + 2, static_cast<uint16_t>(16 * ranges.size()));
  for (size_t i = 0; i < ranges.size(); ++i) {
    wire::Store64(v.data() + 8 + 16 * i, ranges[i].first);
    wire::Store32(v.data() + 16 + 16 * i, ranges[i].second);
  }
  return v;
}

class ThinProvisioningTest : public ::testing::Test {
 protected:
  ThinProvisioningTest() : disk_(1 << 20), lu_(&disk_, LogicalUnitConfig{}) {
    TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 64, 0}, 0, std::vector<uint8_t>(64 * 512, 0xAB));
    w.Run(lu_);
  }
  TestTask UnmapTask(const std::vector<uint8_t>& list) {
    return TestTask({0x42, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(list.size() >> 8),
                     static_cast<uint8_t>(list.size()), 0},
                    0, list);
  }
  backend::MemoryBackend disk_;
  LogicalUnit lu_;
};

TEST_F(ThinProvisioningTest, UnmapDiscardsEveryDescriptor) {
  auto list = UnmapList({{2, 2}, {10, 1}, {20, 0}});
  TestTask t = UnmapTask(list);
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(disk_.count(backend::IoOp::kDiscard), 2u);
  EXPECT_EQ(disk_.Read(2 * 512, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(disk_.Read(10 * 512, 512), std::vector<uint8_t>(512, 0));
  EXPECT_EQ(disk_.Read(4 * 512, 512), std::vector<uint8_t>(512, 0xAB));
}

TEST_F(ThinProvisioningTest, UnmapZeroListLengthIsGood) {
  TestTask t({0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  t.Run(lu_);
  EXPECT_GOOD(t);
}

TEST_F(ThinProvisioningTest, UnmapParameterListChecks) {
  auto list = UnmapList({{2, 2}});
  // List shorter than the header.
  TestTask shortlist({0x42, 0, 0, 0, 0, 0, 0, 0, 6, 0}, 0, list);
  shortlist.Run(lu_);
  EXPECT_SENSE(shortlist, SenseKey::kIllegalRequest, 0x1A, 0x00);
  // Data-out shorter than the parameter list length.
  TestTask truncated({0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0}, 0, list);
  truncated.Run(lu_);
  EXPECT_SENSE(truncated, SenseKey::kIllegalRequest, 0x1A, 0x00);
  // Descriptor length not a multiple of 16.
  auto odd = list;
  wire::Store16(odd.data() + 2, 12);
  TestTask bad = UnmapTask(odd);
  bad.Run(lu_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x1A, 0x00);
  // Descriptor beyond the end of the medium.
  TestTask range = UnmapTask(UnmapList({{2047, 2}}));
  range.Run(lu_);
  EXPECT_SENSE(range, SenseKey::kIllegalRequest, 0x21, 0x00);
  // Too many blocks in one descriptor.
  LogicalUnitConfig c;
  c.max_unmap_blocks = 8;
  LogicalUnit limited(&disk_, c);
  TestTask big = UnmapTask(UnmapList({{0, 9}}));
  big.Run(limited);
  EXPECT_SENSE(big, SenseKey::kIllegalRequest, 0x26, 0x00);
  EXPECT_EQ(disk_.count(backend::IoOp::kDiscard), 0u);
  // The ANCHOR bit is not supported.
  TestTask anchor({0x42, 0x01, 0, 0, 0, 0, 0, 0, 24, 0}, 0, list);
  anchor.Run(lu_);
  EXPECT_SENSE(anchor, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(ThinProvisioningTest, WriteSameReplicatesTheBlock) {
  std::vector<uint8_t> block(512);
  for (size_t i = 0; i < 512; ++i) block[i] = static_cast<uint8_t>(i);
  TestTask t({0x41, 0, 0, 0, 0, 100, 0, 0, 5, 0}, 0, block);
  t.Run(lu_);
  EXPECT_GOOD(t);
  for (int b = 0; b < 5; ++b) {
    EXPECT_EQ(disk_.Read((100 + b) * 512, 512), block);
  }
  EXPECT_EQ(disk_.Read(105 * 512, 512), std::vector<uint8_t>(512, 0));
}

TEST_F(ThinProvisioningTest, WriteSameLargerThanOneChunk) {
  std::vector<uint8_t> block(512, 0x5A);
  // 4096 blocks = 2 MiB: two 1 MiB chunks on a 4 MiB disk.
  backend::MemoryBackend big(4 << 20);
  LogicalUnit lu(&big, LogicalUnitConfig{});
  TestTask t({0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0}, 0, block);
  t.Run(lu);
  EXPECT_GOOD(t);
  EXPECT_EQ(big.Read(0, 2 << 20), std::vector<uint8_t>(2 << 20, 0x5A));
  EXPECT_EQ(big.count(backend::IoOp::kWrite), 2u);
}

TEST_F(ThinProvisioningTest, WriteSameUnmapOfZeroesDiscards) {
  TestTask t({0x41, 0x08, 0, 0, 0, 0, 0, 0, 8, 0}, 0, std::vector<uint8_t>(512, 0));
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(disk_.count(backend::IoOp::kDiscard), 1u);
  EXPECT_EQ(disk_.Read(0, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
  // Without UNMAP, zeroes go to kWriteZeroes.
  TestTask z({0x41, 0, 0, 0, 0, 8, 0, 0, 8, 0}, 0, std::vector<uint8_t>(512, 0));
  z.Run(lu_);
  EXPECT_EQ(disk_.count(backend::IoOp::kWriteZeroes), 1u);
}

TEST_F(ThinProvisioningTest, WriteSame16NdobNeedsNoData) {
  TestTask t({0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 4, 0, 0});
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(disk_.Read(16 * 512, 4 * 512), std::vector<uint8_t>(4 * 512, 0));
}

TEST_F(ThinProvisioningTest, WriteSameValidation) {
  std::vector<uint8_t> block(512, 1);
  TestTask zero({0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, block);  // 0 blocks with WSNZ=1
  zero.Run(lu_);
  EXPECT_SENSE(zero, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask range({0x41, 0, 0, 0, 0x07, 0xFF, 0, 0, 2, 0}, 0, block);
  range.Run(lu_);
  EXPECT_SENSE(range, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask nodata({0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0});
  nodata.Run(lu_);
  EXPECT_SENSE(nodata, SenseKey::kIllegalRequest, 0x0E, 0x03);
  TestTask half({0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, std::vector<uint8_t>(256, 1));
  half.Run(lu_);
  EXPECT_SENSE(half, SenseKey::kIllegalRequest, 0x0E, 0x03);
  TestTask twice({0x41, 0x08, 0, 0, 0, 0, 0, 0, 1, 0}, 0, std::vector<uint8_t>(1024, 0));
  twice.Run(lu_);
  EXPECT_SENSE(twice, SenseKey::kIllegalRequest, 0x0E, 0x03);
  EXPECT_EQ(disk_.count(backend::IoOp::kDiscard), 0u);
  TestTask ndob10({0x41, 0x01, 0, 0, 0, 0, 0, 0, 1, 0});  // NDOB does not exist in (10)
  ndob10.Run(lu_);
  EXPECT_SENSE(ndob10, SenseKey::kIllegalRequest, 0x24, 0x00);
  LogicalUnitConfig c;
  c.max_write_same_blocks = 4;
  LogicalUnit limited(&disk_, c);
  TestTask big({0x41, 0, 0, 0, 0, 0, 0, 0, 5, 0}, 0, block);
  big.Run(limited);
  EXPECT_SENSE(big, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(ThinProvisioningTest, GetLbaStatusReportsUnmappedRuns) {
  auto list = UnmapList({{8, 8}});
  TestTask u = UnmapTask(list);
  u.Run(lu_);
  ASSERT_EQ(u.task.status, Status::kGood);
  TestTask t({0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}, 4096);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_GE(d.size(), 8u + 3 * 16);
  // mapped [0,8), deallocated [8,16), mapped [16,64), then deallocated to the window's end.
  EXPECT_EQ(wire::Load64(&d[8]), 0u);
  EXPECT_EQ(wire::Load32(&d[16]), 8u);
  EXPECT_EQ(d[20] & 0x0F, 0);
  EXPECT_EQ(wire::Load64(&d[24]), 8u);
  EXPECT_EQ(wire::Load32(&d[32]), 8u);
  EXPECT_EQ(d[36] & 0x0F, 1);
  EXPECT_EQ(wire::Load64(&d[40]), 16u);
  EXPECT_EQ(wire::Load32(&d[48]), 48u);
  // Starting inside the unmapped run.
  TestTask t2({0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 24, 0, 0}, 24);
  t2.Run(lu_);
  auto d2 = t2.DataIn();
  ASSERT_EQ(d2.size(), 24u);
  EXPECT_EQ(wire::Load64(&d2[8]), 10u);
  EXPECT_EQ(d2[20] & 0x0F, 1);
  // Beyond the end.
  TestTask bad({0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 24, 0, 0}, 24);
  bad.Run(lu_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x21, 0x00);
}

}  // namespace
}  // namespace vios::scsi
