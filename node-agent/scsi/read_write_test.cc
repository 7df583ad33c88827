// Tests for READ/WRITE 6/10/12/16, VERIFY, WRITE AND VERIFY and SYNCHRONIZE CACHE.
#include <gtest/gtest.h>

#include <cerrno>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

constexpr uint64_t kBlocks = 2048;  // 1 MiB of 512-byte blocks.

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<uint8_t>(seed + i * 7);
  }
  return v;
}

class ReadWriteTest : public ::testing::Test {
 protected:
  ReadWriteTest() : disk_(kBlocks * 512), lu_(&disk_, LogicalUnitConfig{}) {}
  backend::MemoryBackend disk_;
  LogicalUnit lu_;
};

TEST_F(ReadWriteTest, Write10ThenRead10RoundTrips) {
  auto data = Pattern(4 * 512, 1);
  TestTask w({0x2A, 0, 0, 0, 0, 10, 0, 0, 4, 0}, 0, data);
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(disk_.Read(10 * 512, 4 * 512), data);
  TestTask r({0x28, 0, 0, 0, 0, 10, 0, 0, 4, 0}, 4 * 512);
  r.Run(lu_);
  EXPECT_GOOD(r);
  EXPECT_EQ(r.DataIn(), data);
}

TEST_F(ReadWriteTest, AllCdbSizesAddressTheSameBlocks) {
  auto data = Pattern(512, 9);
  TestTask w6({0x0A, 0, 0, 7, 1, 0}, 0, data);
  w6.Run(lu_);
  EXPECT_GOOD(w6);
  TestTask r12({0xA8, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0}, 512);
  r12.Run(lu_);
  EXPECT_EQ(r12.DataIn(), data);
  TestTask r16({0x88, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0}, 512);
  r16.Run(lu_);
  EXPECT_EQ(r16.DataIn(), data);
  auto data2 = Pattern(512, 77);
  TestTask w16({0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0}, 0, data2);
  w16.Run(lu_);
  TestTask w12({0xAA, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0}, 0, data2);
  w12.Run(lu_);
  TestTask r6({0x08, 0, 0, 8, 2, 0}, 1024);
  r6.Run(lu_);
  EXPECT_GOOD(r6);
  auto both = data2;
  both.insert(both.end(), data2.begin(), data2.end());
  EXPECT_EQ(r6.DataIn(), both);
}

TEST_F(ReadWriteTest, Read6LengthZeroMeans256Blocks) {
  TestTask r({0x08, 0, 0, 0, 0, 0}, 256 * 512);
  r.Run(lu_);
  EXPECT_GOOD(r);
  EXPECT_EQ(r.task.data_in_length, 256u * 512);
}

TEST_F(ReadWriteTest, LbaOutOfRange) {
  TestTask r({0x28, 0, 0, 0, 0x08, 0x00, 0, 0, 1, 0}, 512);  // LBA 2048 == capacity
  r.Run(lu_);
  EXPECT_SENSE(r, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask r2({0x28, 0, 0, 0, 0x07, 0xFF, 0, 0, 2, 0}, 1024);  // crosses the end
  r2.Run(lu_);
  EXPECT_SENSE(r2, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask r3({0x88, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0}, 512);
  r3.Run(lu_);  // overflowing LBA + length must not wrap
  EXPECT_SENSE(r3, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask w({0x2A, 0, 0, 0, 0x08, 0x00, 0, 0, 1, 0}, 0, Pattern(512, 0));
  w.Run(lu_);
  EXPECT_SENSE(w, SenseKey::kIllegalRequest, 0x21, 0x00);
}

TEST_F(ReadWriteTest, ZeroLengthTransferIsGoodAndTouchesNothing) {
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0);
  r.Run(lu_);
  EXPECT_GOOD(r);
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(disk_.count(backend::IoOp::kRead) + disk_.count(backend::IoOp::kWrite), 0u);
}

TEST_F(ReadWriteTest, TransferBeyondMaximumRejected) {
  LogicalUnitConfig c;
  c.max_transfer_bytes = 64 * 1024;
  LogicalUnit small(&disk_, c);
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 129, 0}, 129 * 512);
  r.Run(small);
  EXPECT_SENSE(r, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(ReadWriteTest, ShortDataOutWritesOnlyTheBlocksReceived) {
  const std::vector<uint8_t> before = Pattern(1024, 5);
  TestTask seed({0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 0, before);
  seed.Run(lu_);
  auto data = Pattern(512, 3);
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 0, data);  // EDTL one block, CDB two
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(w.task.transfer_length, 1024u);  // the transport reports the overflow residual
  EXPECT_EQ(disk_.Read(0, 512), data);
  EXPECT_EQ(disk_.Read(512, 512), std::vector<uint8_t>(before.begin() + 512, before.end()));
}

TEST_F(ReadWriteTest, NoDataOutWritesNothingAndIsGood) {
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0});  // EDTL 0
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(w.task.transfer_length, 512u);
  EXPECT_EQ(disk_.count(backend::IoOp::kWrite), 0u);
}

TEST_F(ReadWriteTest, PartialBlockDataOutRefusedWithoutWriting) {
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, Pattern(200, 3));
  w.Run(lu_);
  EXPECT_SENSE(w, SenseKey::kIllegalRequest, 0x0E, 0x03);
  EXPECT_EQ(disk_.count(backend::IoOp::kWrite), 0u);
}

TEST_F(ReadWriteTest, TwelveByteVerifyAndWriteAndVerify) {
  auto data = Pattern(2 * 512, 11);
  TestTask w({0xAE, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0}, 0, data);
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(disk_.Read(20 * 512, 2 * 512), data);
  TestTask same({0xAF, 0x02, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0}, 0, data);  // BYTCHK 1
  same.Run(lu_);
  EXPECT_GOOD(same);
  auto other = data;
  other[600] ^= 0xFF;
  TestTask differs({0xAF, 0x02, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0}, 0, other);
  differs.Run(lu_);
  EXPECT_SENSE(differs, SenseKey::kMiscompare, 0x1D, 0x00);
  TestTask beyond({0xAF, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 1, 0, 0});
  beyond.Run(lu_);
  EXPECT_SENSE(beyond, SenseKey::kIllegalRequest, 0x21, 0x00);
}

TEST_F(ReadWriteTest, ReadIntoSmallerBufferFillsWhatFits) {
  auto data = Pattern(2 * 512, 5);
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 0, data);
  w.Run(lu_);
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 700);  // EDTL 700 < 1024
  r.Run(lu_);
  EXPECT_GOOD(r);
  EXPECT_EQ(r.task.data_in_length, 700u);
  EXPECT_EQ(r.task.transfer_length, 1024u);
  EXPECT_EQ(r.DataIn(), std::vector<uint8_t>(data.begin(), data.begin() + 700));
  TestTask r2({0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 200);  // less than one block
  r2.Run(lu_);
  EXPECT_GOOD(r2);
  EXPECT_EQ(r2.DataIn(), std::vector<uint8_t>(data.begin(), data.begin() + 200));
}

TEST_F(ReadWriteTest, FuaWriteFlushes) {
  TestTask w({0x2A, 0x08, 0, 0, 0, 0, 0, 0, 1, 0}, 0, Pattern(512, 1));
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(disk_.count(backend::IoOp::kFlush), 1u);
  TestTask plain({0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, Pattern(512, 1));
  plain.Run(lu_);
  EXPECT_EQ(disk_.count(backend::IoOp::kFlush), 1u);
}

TEST_F(ReadWriteTest, BackendErrorsBecomeSense) {
  disk_.FailNext(-EIO);
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512);
  r.Run(lu_);
  EXPECT_SENSE(r, SenseKey::kMediumError, 0x11, 0x00);
  disk_.FailNext(-EIO);
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, Pattern(512, 1));
  w.Run(lu_);
  EXPECT_SENSE(w, SenseKey::kMediumError, 0x0C, 0x00);
  disk_.FailNext(-ENOTCONN);
  TestTask r2({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512);
  r2.Run(lu_);
  EXPECT_SENSE(r2, SenseKey::kAbortedCommand, 0x08, 0x00);
  EXPECT_EQ(lu_.counters().errors.load(), 3u);
}

TEST_F(ReadWriteTest, ReadOnlyUnitRefusesWrites) {
  LogicalUnitConfig c;
  c.read_only = true;
  LogicalUnit ro(&disk_, c);
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, Pattern(512, 1));
  w.Run(ro);
  EXPECT_SENSE(w, SenseKey::kDataProtect, 0x27, 0x00);
  TestTask ws({0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, 0, Pattern(512, 1));
  ws.Run(ro);
  EXPECT_SENSE(ws, SenseKey::kDataProtect, 0x27, 0x00);
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512);
  r.Run(ro);
  EXPECT_GOOD(r);
  // MODE SENSE reports WP.
  TestTask ms({0x1A, 0x08, 0x3F, 0, 255, 0}, 255);
  ms.Run(ro);
  EXPECT_EQ(ms.DataIn()[2] & 0x80, 0x80);
}

TEST_F(ReadWriteTest, VerifyComparesWhenBytchkSet) {
  auto data = Pattern(2 * 512, 11);
  TestTask w({0x2A, 0, 0, 0, 0, 4, 0, 0, 2, 0}, 0, data);
  w.Run(lu_);
  TestTask v0({0x2F, 0, 0, 0, 0, 4, 0, 0, 2, 0});
  v0.Run(lu_);
  EXPECT_GOOD(v0);
  TestTask v1({0x2F, 0x02, 0, 0, 0, 4, 0, 0, 2, 0}, 0, data);
  v1.Run(lu_);
  EXPECT_GOOD(v1);
  auto wrong = data;
  wrong[600] ^= 1;
  TestTask v2({0x8F, 0x02, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0}, 0, wrong);
  v2.Run(lu_);
  EXPECT_SENSE(v2, SenseKey::kMiscompare, 0x1D, 0x00);
  EXPECT_EQ(v2.task.sense[0] & 0x80, 0x80);
  EXPECT_EQ(wire::Load32(&v2.task.sense[3]), 600u);
  TestTask vbad({0x2F, 0x04, 0, 0, 0, 4, 0, 0, 2, 0}, 0, data);  // BYTCHK 10b
  vbad.Run(lu_);
  EXPECT_SENSE(vbad, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask vrange({0x2F, 0, 0, 0, 0x08, 0, 0, 0, 1, 0});
  vrange.Run(lu_);
  EXPECT_SENSE(vrange, SenseKey::kIllegalRequest, 0x21, 0x00);
}

TEST_F(ReadWriteTest, WriteAndVerifyWritesDurably) {
  auto data = Pattern(512, 4);
  TestTask w({0x2E, 0x02, 0, 0, 0, 3, 0, 0, 1, 0}, 0, data);
  w.Run(lu_);
  EXPECT_GOOD(w);
  EXPECT_EQ(disk_.Read(3 * 512, 512), data);
  EXPECT_EQ(disk_.count(backend::IoOp::kFlush), 1u);
}

TEST_F(ReadWriteTest, SynchronizeCacheFlushesAndChecksRange) {
  TestTask s({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  s.Run(lu_);
  EXPECT_GOOD(s);
  EXPECT_EQ(disk_.count(backend::IoOp::kFlush), 1u);
  TestTask s16({0x91, 0x02, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0});
  s16.Run(lu_);
  EXPECT_GOOD(s16);
  TestTask bad({0x91, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0, 0});
  bad.Run(lu_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x21, 0x00);
}

TEST_F(ReadWriteTest, CountersRecordBytes) {
  TestTask w({0x2A, 0, 0, 0, 0, 0, 0, 0, 4, 0}, 0, Pattern(2048, 1));
  w.Run(lu_);
  TestTask r({0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 1024);
  r.Run(lu_);
  EXPECT_EQ(lu_.counters().writes.load(), 1u);
  EXPECT_EQ(lu_.counters().write_bytes.load(), 2048u);
  EXPECT_EQ(lu_.counters().reads.load(), 1u);
  EXPECT_EQ(lu_.counters().read_bytes.load(), 1024u);
}

}  // namespace
}  // namespace vios::scsi
