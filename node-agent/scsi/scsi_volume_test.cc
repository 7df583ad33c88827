// The whole stack below the transport: ScsiDevice -> LogicalUnit -> Volume (two extents) ->
// Router -> FileBackend (real files, real io_uring, asynchronous completions on another thread).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "node-agent/pool/two_file_pool_test_util.h"
#include "node-agent/scsi/scsi_device.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

constexpr uint64_t kMiB = 1 << 20;

class ScsiVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(pool_.Open("pvc-e2e"));
    LogicalUnitConfig c;
    c.volume_id = "pvc-e2e";
    device_.AddLun(0, std::make_shared<LogicalUnit>(pool_.volume(), c));
  }
  void TearDown() override {
    device_.RemoveLun(0);
    pool_.Close();
  }
  // Run submits and waits: completions arrive on the backend's completion thread.
  void Run(TestTask& t) {
    device_.Submit(&t.task);
    for (int i = 0; i < 1000 && t.done.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(t.done.load(), 1);
  }
  pool::testing::TwoFilePool pool_;
  ScsiDevice device_;
};

TEST_F(ScsiVolumeTest, WriteAcrossExtentBoundaryThenCompareAndWriteAndUnmap) {
  TestTask cap({0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, 32);
  Run(cap);
  EXPECT_GOOD(cap);
  EXPECT_EQ(wire::Load64(cap.DataIn().data()), 2 * kMiB / 512 - 1);
  EXPECT_EQ(cap.DataIn()[14] & 0x80, 0x80);  // thin: files punch holes
  // 8 blocks straddling the boundary at LBA 2048.
  std::vector<uint8_t> data(8 * 512);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i / 512 + 1);
  TestTask w({0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0x07, 0xFC, 0, 0, 0, 8, 0, 0}, 0, data);
  Run(w);
  EXPECT_GOOD(w);
  TestTask r({0x88, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xFC, 0, 0, 0, 8, 0, 0}, 8 * 512);
  Run(r);
  EXPECT_GOOD(r);
  EXPECT_EQ(r.DataIn(), data);
  // COMPARE AND WRITE on the block just after the boundary (it holds 5s).
  std::vector<uint8_t> caw(1024, 5);
  std::fill(caw.begin() + 512, caw.end(), 0xEE);
  TestTask c({0x89, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 1, 0, 0}, 0, caw);
  Run(c);
  EXPECT_GOOD(c);
  TestTask again({0x89, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 1, 0, 0}, 0, caw);
  Run(again);  // now the block holds 0xEE: miscompare at offset 0
  EXPECT_SENSE(again, SenseKey::kMiscompare, 0x1D, 0x00);
  EXPECT_EQ(wire::Load32(&again.task.sense[3]), 0u);
  // UNMAP across the boundary, then the range reads as zeroes.
  std::vector<uint8_t> list(24);
  wire::Store16(list.data(), 22);
  wire::Store16(list.data() + 2, 16);
  wire::Store64(list.data() + 8, 0x7FC);
  wire::Store32(list.data() + 16, 8);
  TestTask u({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 0, list);
  Run(u);
  EXPECT_GOOD(u);
  TestTask r2({0x88, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xFC, 0, 0, 0, 8, 0, 0}, 8 * 512);
  Run(r2);
  EXPECT_EQ(r2.DataIn(), std::vector<uint8_t>(8 * 512, 0));
  TestTask sync({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  Run(sync);
  EXPECT_GOOD(sync);
}

TEST_F(ScsiVolumeTest, VolumeExpansionRaisesCapacityChanged) {
  TestTask first({0x00});
  device_.NexusAdded(first.nexus);
  Run(first);
  EXPECT_SENSE(first, SenseKey::kUnitAttention, 0x29, 0x00);
  std::string error;
  ASSERT_TRUE(pool_.pool()->ExtendVolume(pool_.volume(), {{"a", 0, kMiB}}, &error)) << error;
  TestTask t({0x00});
  Run(t);
  EXPECT_SENSE(t, SenseKey::kUnitAttention, 0x2A, 0x09);
  TestTask cap({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8);
  Run(cap);
  EXPECT_EQ(wire::Load32(cap.DataIn().data()), 3 * kMiB / 512 - 1);
}

}  // namespace
}  // namespace vios::scsi
