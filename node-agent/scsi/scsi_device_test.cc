// Tests for ScsiDevice: LUN routing, REPORT LUNS, absent LUNs, unit attentions, resets.
#include "node-agent/scsi/scsi_device.h"

#include <gtest/gtest.h>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/scsi_test_util.h"
#include "node-agent/scsi/spc2_reservation.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

class ScsiDeviceTest : public ::testing::Test {
 protected:
  ScsiDeviceTest() : disk0_(1 << 20), disk1_(2 << 20) {
    device_.AddLun(0, std::make_shared<LogicalUnit>(&disk0_, LogicalUnitConfig{}));
    device_.AddLun(300, std::make_shared<LogicalUnit>(&disk1_, LogicalUnitConfig{}));
  }
  backend::MemoryBackend disk0_;
  backend::MemoryBackend disk1_;
  ScsiDevice device_;
};

TEST_F(ScsiDeviceTest, FirstCommandAfterLoginSeesPowerOnResetOnce) {
  TestTask probe({0x00});
  device_.NexusAdded(probe.nexus);
  TestTask inquiry({0x12, 0, 0, 0, 36, 0}, 36);
  inquiry.Submit(device_);
  EXPECT_GOOD(inquiry);  // INQUIRY neither reports nor clears it
  TestTask tur({0x00});
  tur.Submit(device_);
  EXPECT_SENSE(tur, SenseKey::kUnitAttention, 0x29, 0x00);
  TestTask tur2({0x00});
  tur2.Submit(device_);
  EXPECT_GOOD(tur2);
  // Per LUN: LUN 300 still has its own.
  TestTask other({0x00});
  other.task.lun = 300;
  other.Submit(device_);
  EXPECT_SENSE(other, SenseKey::kUnitAttention, 0x29, 0x00);
}

TEST_F(ScsiDeviceTest, RequestSenseReturnsAndClearsUnitAttention) {
  TestTask probe({0x00});
  device_.NexusAdded(probe.nexus);
  TestTask rs({0x03, 0, 0, 0, 18, 0}, 18);
  rs.Submit(device_);
  EXPECT_GOOD(rs);
  auto d = rs.DataIn();
  ASSERT_EQ(d.size(), 18u);
  EXPECT_EQ(d[2] & 0x0F, 0x06);
  EXPECT_EQ(d[12], 0x29);
  TestTask tur({0x00});
  tur.Submit(device_);
  EXPECT_GOOD(tur);
}

TEST_F(ScsiDeviceTest, ReportLunsListsFlatAndPeripheralLuns) {
  TestTask t({0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 64);
  t.task.lun = 7;  // REPORT LUNS works at any LUN
  t.Submit(device_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 24u);
  EXPECT_EQ(wire::Load32(d.data()), 16u);
  EXPECT_EQ(d[8], 0x00);
  EXPECT_EQ(d[9], 0x00);
  EXPECT_EQ(d[16], 0x41);  // flat addressing, 300 = 0x12C
  EXPECT_EQ(d[17], 0x2C);
  TestTask wlun({0xA0, 0, 0x01, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 64);
  wlun.Submit(device_);
  EXPECT_EQ(wire::Load32(wlun.DataIn().data()), 0u);
  TestTask bad({0xA0, 0, 0x07, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 64);
  bad.Submit(device_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x24, 0x00);
}

TEST_F(ScsiDeviceTest, AbsentLun) {
  TestTask inq({0x12, 0, 0, 0, 36, 0}, 36);
  inq.task.lun = 5;
  inq.Submit(device_);
  EXPECT_GOOD(inq);
  EXPECT_EQ(inq.DataIn()[0], 0x7F);  // PQ 3, PDT 1Fh
  TestTask read({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512);
  read.task.lun = 5;
  read.Submit(device_);
  EXPECT_SENSE(read, SenseKey::kIllegalRequest, 0x25, 0x00);
  TestTask rs({0x03, 0, 0, 0, 18, 0}, 18);
  rs.task.lun = 5;
  rs.Submit(device_);
  EXPECT_GOOD(rs);
  EXPECT_EQ(rs.DataIn()[12], 0x25);
}

TEST_F(ScsiDeviceTest, ResizeRaisesCapacityChangedForEveryNexus) {
  TestTask a({0x00});
  TestTask b({0x00});
  b.nexus.initiator_port = "iqn.b,i,0x2";
  device_.NexusAdded(a.nexus);
  TestTask clear_a({0x03, 0, 0, 0, 18, 0}, 18);
  clear_a.Submit(device_);
  disk0_.Resize(4 << 20);
  a.Submit(device_);
  EXPECT_SENSE(a, SenseKey::kUnitAttention, 0x2A, 0x09);
  b.Submit(device_);
  // Nexus b was never added: unknown nexuses carry no unit attention state.
  EXPECT_GOOD(b);
  device_.NexusAdded(b.nexus);
  TestTask rs({0x03, 0, 0, 0, 18, 0}, 18);
  rs.nexus.initiator_port = "iqn.b,i,0x2";
  rs.Submit(device_);
  EXPECT_EQ(rs.DataIn()[12], 0x29);
  disk0_.Resize(8 << 20);
  TestTask c({0x00});
  c.nexus.initiator_port = "iqn.b,i,0x2";
  c.Submit(device_);
  EXPECT_SENSE(c, SenseKey::kUnitAttention, 0x2A, 0x09);
  TestTask a2({0x00});
  a2.Submit(device_);
  EXPECT_SENSE(a2, SenseKey::kUnitAttention, 0x2A, 0x09);
  TestTask cap({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8);
  cap.Submit(device_);
  ASSERT_EQ(cap.task.data_in_length, 8u);
  EXPECT_EQ(wire::Load32(cap.DataIn().data()), (8u << 20) / 512 - 1);
}

TEST_F(ScsiDeviceTest, LunResetRaisesUnitAttentionForOtherNexusesAndReleasesReservation) {
  Spc2Reservations reservations;
  device_.Lun(0)->SetReservationPolicy(&reservations);
  TestTask a({0x16, 0, 0, 0, 0, 0});
  TestTask b({0x00});
  b.nexus.initiator_port = "iqn.b,i,0x2";
  device_.NexusAdded(a.nexus);
  device_.NexusAdded(b.nexus);
  TestTask clear_a({0x03, 0, 0, 0, 18, 0}, 18);
  clear_a.Submit(device_);
  TestTask clear_b({0x03, 0, 0, 0, 18, 0}, 18);
  clear_b.nexus = b.nexus;
  clear_b.Submit(device_);
  a.Submit(device_);  // RESERVE(6)
  EXPECT_GOOD(a);
  EXPECT_EQ(device_.TaskManagement(TaskManagementFunction::kLogicalUnitReset, a.nexus, 0),
            TaskManagementResult::kFunctionComplete);
  EXPECT_FALSE(reservations.Reserved());
  b.Submit(device_);
  EXPECT_SENSE(b, SenseKey::kUnitAttention, 0x29, 0x03);
  TestTask a2({0x00});
  a2.Submit(device_);
  EXPECT_GOOD(a2);  // the nexus that asked for the reset gets none
  EXPECT_EQ(device_.TaskManagement(TaskManagementFunction::kLogicalUnitReset, a.nexus, 9),
            TaskManagementResult::kIncorrectLun);
  device_.Lun(0)->SetReservationPolicy(nullptr);
}

TEST_F(ScsiDeviceTest, NexusRemovalReleasesSpc2Reservation) {
  Spc2Reservations reservations;
  device_.Lun(0)->SetReservationPolicy(&reservations);
  TestTask a({0x16, 0, 0, 0, 0, 0});
  a.Submit(device_);
  EXPECT_TRUE(reservations.Reserved());
  device_.NexusRemoved(a.nexus);
  EXPECT_FALSE(reservations.Reserved());
  device_.Lun(0)->SetReservationPolicy(nullptr);
}

TEST_F(ScsiDeviceTest, ReservationPolicyCanPostUnitAttentions) {
  TestTask a({0x00});
  device_.NexusAdded(a.nexus);
  TestTask clear({0x03, 0, 0, 0, 18, 0}, 18);
  clear.Submit(device_);
  EXPECT_TRUE(device_.EstablishUnitAttention(a.nexus.initiator_port, a.nexus.target_port, 0,
                                             Asc{0x2A, 0x03}));
  EXPECT_FALSE(
      device_.EstablishUnitAttention("iqn.nobody,i,0x1", a.nexus.target_port, 0, Asc{0x2A, 0x03}));
  EXPECT_FALSE(device_.EstablishUnitAttention(a.nexus.initiator_port, a.nexus.target_port, 0,
                                              Asc{0x11, 0x00}));
  a.Submit(device_);
  EXPECT_SENSE(a, SenseKey::kUnitAttention, 0x2A, 0x03);
}

TEST_F(ScsiDeviceTest, LunMapChangesRaiseReportedLunsChanged) {
  TestTask a({0x00});
  device_.NexusAdded(a.nexus);
  TestTask c1({0x03, 0, 0, 0, 18, 0}, 18);
  c1.Submit(device_);
  device_.RemoveLun(300);
  TestTask t({0x00});
  t.Submit(device_);
  EXPECT_SENSE(t, SenseKey::kUnitAttention, 0x3F, 0x0E);
  device_.AddLun(1, std::make_shared<LogicalUnit>(&disk1_, LogicalUnitConfig{}));
  // REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED.
  TestTask rl({0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, 64);
  rl.Submit(device_);
  TestTask t2({0x00});
  t2.Submit(device_);
  EXPECT_GOOD(t2);
}

}  // namespace
}  // namespace vios::scsi
