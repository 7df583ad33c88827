// PersistentReservations through a LogicalUnit: registration, reservation types and conflicts,
// preemption, clear, PR IN reports.
#include "node-agent/scsi/persistent_reservation.h"

#include <gtest/gtest.h>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::scsi {
namespace {

using testing::TestTask;

class PersistentReservationTest : public ::testing::Test {
 protected:
  PersistentReservationTest() : disk_(1 << 20), lu_(&disk_, LogicalUnitConfig{}, &pr_) {}

  static std::string Port(int who) { return "iqn.test:host" + std::to_string(who) + ",i,0x1"; }
  int Out(int who, uint8_t sa, uint8_t type, uint64_t key, uint64_t sa_key, uint8_t flags = 0) {
    std::vector<uint8_t> p(24);
    wire::Store64(p.data(), key);
    wire::Store64(p.data() + 8, sa_key);
    p[20] = flags;
    TestTask t({0x5F, sa, type, 0, 0, 0, 0, 0, 24, 0}, 0, p);
    t.nexus.initiator_port = Port(who);
    t.Run(lu_);
    last_asc_ = t.AscValue();
    return static_cast<int>(t.task.status);
  }
  std::vector<uint8_t> In(uint8_t sa) {
    TestTask t({0x5E, sa, 0, 0, 0, 0, 0, 0x04, 0, 0}, 1024);
    t.Run(lu_);
    EXPECT_GOOD(t);
    return t.DataIn();
  }
  Status Io(int who, uint8_t opcode) {
    TestTask t({opcode, 0, 0, 0, 0, 0, 0, 0, 1, 0}, opcode == 0x28 ? 512 : 0,
               opcode == 0x2A ? std::vector<uint8_t>(512) : std::vector<uint8_t>{});
    t.nexus.initiator_port = Port(who);
    t.Run(lu_);
    return t.task.status;
  }
  static constexpr int kGood = 0;
  static constexpr int kConflict = 0x18;
  static constexpr int kCheck = 0x02;

  backend::MemoryBackend disk_;
  PersistentReservations pr_;
  LogicalUnit lu_;
  uint8_t last_asc_ = 0;
};

TEST_F(PersistentReservationTest, RegisterAndReadKeys) {
  EXPECT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  EXPECT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  EXPECT_EQ(Out(2, 0x00, 0, 0x99, 0xB3), kConflict);  // wrong current key
  EXPECT_EQ(Out(3, 0x00, 0, 0x99, 0xC3), kConflict);  // unregistered with a nonzero key
  auto keys = In(0x00);
  EXPECT_EQ(wire::Load32(keys.data()), 2u);  // generation
  ASSERT_EQ(wire::Load32(keys.data() + 4), 16u);
  EXPECT_EQ(wire::Load64(keys.data() + 8), 0xA1u);
  EXPECT_EQ(wire::Load64(keys.data() + 16), 0xB2u);
  EXPECT_EQ(Out(2, 0x06, 0, 0, 0xB4), kGood);  // register and ignore
  EXPECT_EQ(Out(1, 0x00, 0, 0xA1, 0), kGood);  // unregister
  EXPECT_EQ(pr_.registrations(), 1u);
}

TEST_F(PersistentReservationTest, WriteExclusiveLetsOthersReadOnly) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  EXPECT_EQ(Out(2, 0x01, 1, 0xA1, 0), kConflict);  // wrong key
  ASSERT_EQ(Out(1, 0x01, 1, 0xA1, 0), kGood);
  EXPECT_EQ(Out(2, 0x01, 1, 0xB2, 0), kConflict);  // held by another
  EXPECT_EQ(Io(1, 0x2A), Status::kGood);
  EXPECT_EQ(Io(2, 0x28), Status::kGood);
  EXPECT_EQ(Io(2, 0x2A), Status::kReservationConflict);
  EXPECT_EQ(Io(3, 0x00), Status::kGood);  // TEST UNIT READY is always allowed
  auto res = In(0x01);
  ASSERT_EQ(wire::Load32(res.data() + 4), 16u);
  EXPECT_EQ(wire::Load64(res.data() + 8), 0xA1u);
  EXPECT_EQ(res[21], 1);
  EXPECT_EQ(Out(1, 0x02, 3, 0xA1, 0), kCheck);  // release with the wrong type
  EXPECT_EQ(last_asc_, 0x26);
  EXPECT_EQ(Out(1, 0x02, 1, 0xA1, 0), kGood);
  EXPECT_EQ(Io(2, 0x2A), Status::kGood);
}

TEST_F(PersistentReservationTest, ExclusiveAccessRegistrantsOnly) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  ASSERT_EQ(Out(1, 0x01, 6, 0xA1, 0), kGood);
  EXPECT_EQ(Io(2, 0x2A), Status::kGood);                 // a registrant
  EXPECT_EQ(Io(3, 0x28), Status::kReservationConflict);  // not registered: no reads
  // Unregistering the holder releases a registrants-only reservation.
  ASSERT_EQ(Out(1, 0x00, 0, 0xA1, 0), kGood);
  EXPECT_EQ(Io(3, 0x28), Status::kGood);
}

TEST_F(PersistentReservationTest, AllRegistrantsReservationReportsKeyZero) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  ASSERT_EQ(Out(1, 0x01, 8, 0xA1, 0), kGood);
  EXPECT_EQ(Out(2, 0x01, 8, 0xB2, 0), kGood);  // any registrant holds it
  auto res = In(0x01);
  EXPECT_EQ(wire::Load64(res.data() + 8), 0u);
  EXPECT_EQ(Io(3, 0x28), Status::kReservationConflict);
}

TEST_F(PersistentReservationTest, PreemptTakesOverAndRemovesTheVictim) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  ASSERT_EQ(Out(1, 0x01, 3, 0xA1, 0), kGood);
  EXPECT_EQ(Io(2, 0x28), Status::kReservationConflict);
  const uint32_t before = pr_.generation();
  ASSERT_EQ(Out(2, 0x04, 1, 0xB2, 0xA1), kGood);  // preempt the holder
  EXPECT_GT(pr_.generation(), before);
  EXPECT_EQ(pr_.registrations(), 1u);
  auto res = In(0x01);
  EXPECT_EQ(wire::Load64(res.data() + 8), 0xB2u);
  EXPECT_EQ(res[21], 1);
  EXPECT_EQ(Io(1, 0x2A), Status::kReservationConflict);
  EXPECT_EQ(Out(1, 0x01, 1, 0xA1, 0), kConflict);     // no longer registered
  EXPECT_EQ(Out(2, 0x05, 1, 0xB2, 0x77), kConflict);  // nobody has that key
}

TEST_F(PersistentReservationTest, ClearRemovesEverything) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  ASSERT_EQ(Out(1, 0x01, 1, 0xA1, 0), kGood);
  EXPECT_EQ(Out(3, 0x03, 0, 0, 0), kConflict);
  ASSERT_EQ(Out(2, 0x03, 0, 0xB2, 0), kGood);
  EXPECT_EQ(pr_.registrations(), 0u);
  EXPECT_EQ(wire::Load32(In(0x01).data() + 4), 0u);
  EXPECT_EQ(Io(2, 0x2A), Status::kGood);
}

TEST_F(PersistentReservationTest, BadParameters) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  EXPECT_EQ(Out(1, 0x01, 2, 0xA1, 0), kCheck);  // type 2 does not exist
  EXPECT_EQ(last_asc_, 0x24);
  EXPECT_EQ(Out(1, 0x01, 0x11, 0xA1, 0), kCheck);     // element scope
  EXPECT_EQ(Out(2, 0x00, 0, 0, 0xB2, 0x01), kCheck);  // APTPL unsupported
  EXPECT_EQ(last_asc_, 0x26);
  TestTask short_list({0x5F, 0x00, 0, 0, 0, 0, 0, 0, 20, 0}, 0, std::vector<uint8_t>(20));
  short_list.Run(lu_);
  EXPECT_SENSE(short_list, SenseKey::kIllegalRequest, 0x1A, 0x00);
  auto caps = In(0x02);
  ASSERT_EQ(caps.size(), 8u);
  EXPECT_EQ(caps[3] & 0x80, 0x80);
  EXPECT_EQ(caps[2] & 0x01, 0);  // PTPL_C: persisting through power loss is not offered
}

TEST_F(PersistentReservationTest, ReadFullStatusDescribesEveryRegistration) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(2, 0x00, 0, 0, 0xB2), kGood);
  ASSERT_EQ(Out(2, 0x01, 5, 0xB2, 0), kGood);
  auto s = In(0x03);
  const uint32_t length = wire::Load32(s.data() + 4);
  ASSERT_EQ(s.size(), 8u + length);
  size_t off = 8;
  int holders = 0;
  int count = 0;
  while (off < s.size()) {
    const uint8_t* d = s.data() + off;
    holders += d[12] & 1;
    if ((d[12] & 1) != 0) {
      EXPECT_EQ(wire::Load64(d), 0xB2u);
      EXPECT_EQ(d[13], 5);
    }
    EXPECT_EQ(d[24], 0x45);
    off += 24 + wire::Load32(d + 20);
    ++count;
  }
  EXPECT_EQ(count, 2);
  EXPECT_EQ(holders, 1);
}

TEST_F(PersistentReservationTest, Spc2ReserveConflictsWithPersistentReservation) {
  ASSERT_EQ(Out(1, 0x00, 0, 0, 0xA1), kGood);
  ASSERT_EQ(Out(1, 0x01, 1, 0xA1, 0), kGood);
  TestTask reserve({0x16, 0, 0, 0, 0, 0});
  reserve.nexus.initiator_port = Port(2);
  reserve.Run(lu_);
  EXPECT_EQ(reserve.task.status, Status::kReservationConflict);
  // The opcodes are reported as supported now.
  TestTask rsoc({0xA3, 0x0C, 0x02, 0x5F, 0, 0x01, 0, 0, 1, 0, 0, 0}, 256);
  rsoc.Run(lu_);
  EXPECT_EQ(rsoc.DataIn()[1] & 0x07, 3);
}

}  // namespace
}  // namespace vios::scsi
