// Tests for MODE SENSE / MODE SELECT and REPORT SUPPORTED OPERATION CODES / TMFs.
#include <gtest/gtest.h>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_test_util.h"
#include "node-agent/scsi/spc2_reservation.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

class ModePagesTest : public ::testing::Test {
 protected:
  ModePagesTest() : disk_(1 << 20), lu_(&disk_, LogicalUnitConfig{}) {}
  backend::MemoryBackend disk_;
  LogicalUnit lu_;
};

TEST_F(ModePagesTest, ModeSense6AllPagesWithBlockDescriptor) {
  TestTask t({0x1A, 0, 0x3F, 0, 255, 0}, 255);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 4u + 8 + 20 + 12 + 12);
  EXPECT_EQ(d[0], d.size() - 1);
  EXPECT_EQ(d[3], 8);                     // block descriptor length
  EXPECT_EQ(wire::Load32(&d[4]), 2048u);  // blocks
  EXPECT_EQ(wire::Load24(&d[9]), 512u);   // block length
  EXPECT_EQ(d[12], 0x08);                 // caching page first
  EXPECT_EQ(d[14] & 0x04, 0x04);          // WCE
  EXPECT_EQ(d[32], 0x0A);
  EXPECT_EQ(d[44], 0x1C);
}

TEST_F(ModePagesTest, ModeSense10DbdAndLongLba) {
  TestTask t({0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 255, 0}, 255);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 8u + 20);
  EXPECT_EQ(wire::Load16(&d[6]), 0);
  TestTask l({0x5A, 0x10, 0x0A, 0, 0, 0, 0, 0, 255, 0}, 255);
  l.Run(lu_);
  auto ld = l.DataIn();
  ASSERT_EQ(ld.size(), 8u + 16 + 12);
  EXPECT_EQ(ld[4] & 0x01, 1);  // LONGLBA
  EXPECT_EQ(wire::Load64(&ld[8]), 2048u);
}

TEST_F(ModePagesTest, ModeSensePageControlAndBadPages) {
  TestTask ch({0x1A, 0x08, 0x48, 0, 255, 0}, 255);  // changeable caching page
  ch.Run(lu_);
  EXPECT_GOOD(ch);
  EXPECT_EQ(ch.DataIn()[4 + 2], 0);
  TestTask saved({0x1A, 0x08, 0xC8, 0, 255, 0}, 255);
  saved.Run(lu_);
  EXPECT_SENSE(saved, SenseKey::kIllegalRequest, 0x39, 0x00);
  TestTask unknown({0x1A, 0x08, 0x19, 0, 255, 0}, 255);
  unknown.Run(lu_);
  EXPECT_SENSE(unknown, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask sub({0x1A, 0x08, 0x0A, 0x01, 255, 0}, 255);
  sub.Run(lu_);
  EXPECT_SENSE(sub, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask all_sub({0x1A, 0x08, 0x3F, 0xFF, 255, 0}, 255);
  all_sub.Run(lu_);
  EXPECT_GOOD(all_sub);
}

TEST_F(ModePagesTest, ModeSelectAcceptsCurrentValuesRejectsChanges) {
  TestTask sense({0x1A, 0x08, 0x08, 0, 255, 0}, 255);
  sense.Run(lu_);
  auto page = sense.DataIn();
  page[0] = 0;  // mode data length is reserved in MODE SELECT
  TestTask same({0x15, 0x10, 0, 0, static_cast<uint8_t>(page.size()), 0}, 0, page);
  same.Run(lu_);
  EXPECT_GOOD(same);
  auto changed = page;
  changed[4 + 2] &= static_cast<uint8_t>(~0x04);  // clear WCE
  TestTask change({0x15, 0x10, 0, 0, static_cast<uint8_t>(changed.size()), 0}, 0, changed);
  change.Run(lu_);
  EXPECT_SENSE(change, SenseKey::kIllegalRequest, 0x26, 0x00);
  TestTask sp({0x15, 0x11, 0, 0, static_cast<uint8_t>(page.size()), 0}, 0, page);
  sp.Run(lu_);
  EXPECT_SENSE(sp, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask truncated({0x15, 0x10, 0, 0, 30, 0}, 0, page);
  truncated.Run(lu_);
  EXPECT_SENSE(truncated, SenseKey::kIllegalRequest, 0x1A, 0x00);
  TestTask empty({0x15, 0x10, 0, 0, 0, 0});
  empty.Run(lu_);
  EXPECT_GOOD(empty);
}

TEST_F(ModePagesTest, ReportAllOpcodesMatchesTheTable) {
  TestTask t({0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}, 4096);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  const size_t n = wire::Load32(d.data()) / 8;
  size_t supported = 0;
  for (const auto& e : LogicalUnit::Opcodes()) {
    if (lu_.IsSupported(e)) ++supported;
  }
  EXPECT_EQ(n, supported);
  bool has_read16 = false;
  bool has_pr = false;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* e = &d[4 + 8 * i];
    has_read16 |= e[0] == 0x88 && wire::Load16(e + 6) == 16;
    has_pr |= e[0] == 0x5E;
  }
  EXPECT_TRUE(has_read16);
  EXPECT_FALSE(has_pr);  // no reservation policy installed
  // Every listed command executes (is not INVALID COMMAND OPERATION CODE).
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* e = &d[4 + 8 * i];
    TestTask probe({e[0], static_cast<uint8_t>((e[5] & 1) ? e[3] : 0)}, 512);
    probe.Run(lu_);
    EXPECT_FALSE(probe.task.status == Status::kCheckCondition && probe.AscValue() == 0x20)
        << "opcode " << int(e[0]);
  }
}

TEST_F(ModePagesTest, ReportOneCommandWithUsageData) {
  TestTask t({0xA3, 0x0C, 0x01, 0x28, 0, 0, 0, 0, 1, 0, 0, 0}, 256);
  t.Run(lu_);
  EXPECT_GOOD(t);
  auto d = t.DataIn();
  ASSERT_EQ(d.size(), 4u + 10);
  EXPECT_EQ(d[1] & 0x07, 3);
  EXPECT_EQ(wire::Load16(&d[2]), 10);
  EXPECT_EQ(d[4], 0x28);
  EXPECT_EQ(d[13], 0x00);  // control byte: NACA not supported
  // Service-action command asked without SA (options 1) is an invalid field.
  TestTask bad({0xA3, 0x0C, 0x01, 0x9E, 0, 0, 0, 0, 1, 0, 0, 0}, 256);
  bad.Run(lu_);
  EXPECT_SENSE(bad, SenseKey::kIllegalRequest, 0x24, 0x00);
  TestTask sa({0xA3, 0x0C, 0x02, 0x9E, 0, 0x10, 0, 0, 1, 0, 0, 0}, 256);
  sa.Run(lu_);
  EXPECT_GOOD(sa);
  EXPECT_EQ(sa.DataIn()[1] & 0x07, 3);
  TestTask unsupported({0xA3, 0x0C, 0x01, 0xC7, 0, 0, 0, 0, 1, 0, 0, 0}, 256);
  unsupported.Run(lu_);
  EXPECT_GOOD(unsupported);
  EXPECT_EQ(unsupported.DataIn()[1] & 0x07, 1);
  TestTask timeouts({0xA3, 0x0C, 0x81, 0x28, 0, 0, 0, 0, 1, 0, 0, 0}, 256);
  timeouts.Run(lu_);
  EXPECT_EQ(timeouts.task.data_in_length, 4u + 10 + 12);
  EXPECT_EQ(timeouts.DataIn()[1] & 0x80, 0x80);
}

TEST_F(ModePagesTest, ReportSupportedTaskManagementFunctions) {
  TestTask t({0xA3, 0x0D, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0}, 4);
  t.Run(lu_);
  EXPECT_GOOD(t);
  EXPECT_EQ(t.DataIn()[0], 0xCA);
}

TEST_F(ModePagesTest, Spc2ReservationConflictsForOtherNexus) {
  Spc2Reservations reservations;
  lu_.SetReservationPolicy(&reservations);
  TestTask reserve({0x16, 0, 0, 0, 0, 0});
  reserve.Run(lu_);
  EXPECT_GOOD(reserve);
  EXPECT_TRUE(reservations.Reserved());
  TestTask other({0x00, 0, 0, 0, 0, 0});
  other.nexus.initiator_port = "iqn.other,i,0x1";
  other.Run(lu_);
  EXPECT_EQ(other.task.status, Status::kReservationConflict);
  TestTask inquiry({0x12, 0, 0, 0, 36, 0}, 36);
  inquiry.nexus.initiator_port = "iqn.other,i,0x1";
  inquiry.Run(lu_);
  EXPECT_GOOD(inquiry);
  TestTask mine({0x00, 0, 0, 0, 0, 0});
  mine.Run(lu_);
  EXPECT_GOOD(mine);
  TestTask release({0x17, 0, 0, 0, 0, 0});
  release.Run(lu_);
  EXPECT_FALSE(reservations.Reserved());
  TestTask rsoc({0xA3, 0x0C, 0x01, 0x16, 0, 0, 0, 0, 1, 0, 0, 0}, 256);
  rsoc.Run(lu_);
  EXPECT_EQ(rsoc.DataIn()[1] & 0x07, 3);
  lu_.SetReservationPolicy(nullptr);
}

}  // namespace
}  // namespace vios::scsi
