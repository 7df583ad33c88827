// Tests for COMPARE AND WRITE: compare semantics, miscompare sense, and atomicity against
// overlapping writes while the command is in flight.
#include <gtest/gtest.h>

#include <deque>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

// HeldBackend queues requests to a MemoryBackend until the test releases them, so commands stay
// in flight as long as the test wants.
class HeldBackend final : public backend::BlockDevice {
 public:
  explicit HeldBackend(uint64_t size) : inner_(size) {}
  uint64_t SizeBytes() const override { return inner_.SizeBytes(); }
  uint32_t BlockSize() const override { return 512; }
  bool SupportsDiscard() const override { return true; }
  void Submit(backend::IoRequest* request) override { held_.push_back(request); }
  std::string Describe() const override { return "held"; }
  // ReleaseOne completes the oldest held request; false when none is held.
  bool ReleaseOne() {
    if (held_.empty()) return false;
    backend::IoRequest* r = held_.front();
    held_.pop_front();
    inner_.Submit(r);
    return true;
  }
  void ReleaseAll() {
    while (ReleaseOne()) {
    }
  }
  size_t held() const { return held_.size(); }
  backend::IoOp front_op() const { return held_.front()->op; }
  backend::MemoryBackend inner_;

 private:
  std::deque<backend::IoRequest*> held_;
};

std::vector<uint8_t> CawData(uint8_t compare, uint8_t write, size_t blocks = 1) {
  std::vector<uint8_t> v(2 * blocks * 512, compare);
  std::fill(v.begin() + static_cast<ptrdiff_t>(blocks * 512), v.end(), write);
  return v;
}

TEST(CompareAndWriteTest, WritesWhenEqual) {
  backend::MemoryBackend disk(1 << 20);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  TestTask t({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0}, 0, CawData(0, 0x77));
  t.Run(lu);
  EXPECT_GOOD(t);
  EXPECT_EQ(disk.Read(5 * 512, 512), std::vector<uint8_t>(512, 0x77));
}

TEST(CompareAndWriteTest, MiscompareReportsOffsetAndWritesNothing) {
  backend::MemoryBackend disk(1 << 20);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  auto data = CawData(0, 0x77, 2);
  data[700] = 1;  // Second block, byte 188, differs from the medium's zero.
  TestTask t({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0}, 0, data);
  t.Run(lu);
  EXPECT_SENSE(t, SenseKey::kMiscompare, 0x1D, 0x00);
  EXPECT_EQ(t.task.sense[0] & 0x80, 0x80);  // VALID: INFORMATION holds the offset
  EXPECT_EQ(wire::Load32(&t.task.sense[3]), 700u);
  EXPECT_EQ(disk.Read(5 * 512, 1024), std::vector<uint8_t>(1024, 0));
}

TEST(CompareAndWriteTest, Validation) {
  backend::MemoryBackend disk(1 << 20);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  TestTask zero({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0});
  zero.Run(lu);
  EXPECT_GOOD(zero);
  TestTask too_long({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 200, 0, 0}, 0, CawData(0, 1, 200));
  too_long.Run(lu);
  EXPECT_SENSE(too_long, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask range({0x89, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xFF, 0, 0, 0, 2, 0, 0}, 0, CawData(0, 1, 2));
  range.Run(lu);
  EXPECT_SENSE(range, SenseKey::kIllegalRequest, 0x21, 0x00);
  TestTask short_data({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0}, 0,
                      std::vector<uint8_t>(512));
  short_data.Run(lu);
  EXPECT_SENSE(short_data, SenseKey::kIllegalRequest, 0x0E, 0x03);
  // Data-Out of four blocks for a one-block COMPARE AND WRITE: refused, nothing compared.
  TestTask long_data({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0}, 0,
                     std::vector<uint8_t>(4 * 512));
  long_data.Run(lu);
  EXPECT_SENSE(long_data, SenseKey::kIllegalRequest, 0x0E, 0x03);
  // Zero blocks with Data-Out (256 wrapped to 0 in the one-byte field): INVALID FIELD IN CDB.
  TestTask zero_with_data({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0}, 0,
                          std::vector<uint8_t>(2 * 512));
  zero_with_data.Run(lu);
  EXPECT_SENSE(zero_with_data, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST(CompareAndWriteTest, OverlappingWriteWaitsUntilCompareAndWriteCompletes) {
  HeldBackend disk(1 << 20);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  TestTask caw({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0}, 0, CawData(0, 0x11, 2));
  lu.Execute(&caw.task);
  ASSERT_EQ(disk.held(), 1u);  // The compare read.
  // An overlapping write arrives while COMPARE AND WRITE is in flight; a disjoint one too.
  TestTask overlap({0x2A, 0, 0, 0, 0, 11, 0, 0, 1, 0}, 0, std::vector<uint8_t>(512, 0x22));
  lu.Execute(&overlap.task);
  TestTask disjoint({0x2A, 0, 0, 0, 0, 50, 0, 0, 1, 0}, 0, std::vector<uint8_t>(512, 0x33));
  lu.Execute(&disjoint.task);
  EXPECT_EQ(disk.held(), 2u);  // The disjoint write went through; the overlapping one waits.
  EXPECT_EQ(overlap.done.load(), 0);
  ASSERT_TRUE(disk.ReleaseOne());  // compare read completes -> CAW write submitted
  EXPECT_EQ(disk.held(), 2u);
  ASSERT_TRUE(disk.ReleaseOne());  // disjoint write
  EXPECT_EQ(disjoint.done.load(), 1);
  EXPECT_EQ(overlap.done.load(), 0);
  ASSERT_TRUE(disk.ReleaseOne());  // CAW write completes -> overlapping write admitted
  EXPECT_EQ(caw.done.load(), 1);
  EXPECT_GOOD(caw);
  EXPECT_EQ(disk.held(), 1u);
  disk.ReleaseAll();
  EXPECT_EQ(overlap.done.load(), 1);
  // The later write landed after the compare-and-write: block 11 holds 0x22, block 10 0x11.
  EXPECT_EQ(disk.inner_.Read(10 * 512, 512), std::vector<uint8_t>(512, 0x11));
  EXPECT_EQ(disk.inner_.Read(11 * 512, 512), std::vector<uint8_t>(512, 0x22));
}

TEST(CompareAndWriteTest, CompareAndWriteWaitsForOverlappingWriteInFlight) {
  HeldBackend disk(1 << 20);
  LogicalUnit lu(&disk, LogicalUnitConfig{});
  TestTask write({0x2A, 0, 0, 0, 0, 10, 0, 0, 1, 0}, 0, std::vector<uint8_t>(512, 0x44));
  lu.Execute(&write.task);
  ASSERT_EQ(disk.held(), 1u);
  // CAW expects the value the in-flight write is about to store.
  TestTask caw({0x89, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0}, 0, CawData(0x44, 0x55));
  lu.Execute(&caw.task);
  EXPECT_EQ(disk.held(), 1u);  // CAW did not start reading yet.
  disk.ReleaseAll();
  EXPECT_GOOD(caw);
  EXPECT_EQ(disk.inner_.Read(10 * 512, 512), std::vector<uint8_t>(512, 0x55));
}

}  // namespace
}  // namespace vios::scsi
