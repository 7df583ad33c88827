// PrEngine PERSISTENT RESERVE OUT: each service action, each type, and bad input (SPC-4 §5.13,
// §6.16): standard sense and no state change.
#include <gtest/gtest.h>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_test_util.h"

namespace vios::reservation {
namespace {

using testing::HasSense;
using testing::MakeNexus;
using testing::Out;
using testing::ProutCdb;
using testing::ProutParams;
using A = ProutAction;
namespace wire = scsi::wire;

constexpr uint8_t kAllTypes[] = {1, 3, 5, 6, 7, 8};

class ProutTest : public ::testing::Test {
 protected:
  // Apply runs a command and installs its state, expecting success.
  PrResult Apply(const scsi::Nexus& n, A a, uint64_t key, uint64_t sa_key, uint8_t type = 0) {
    PrResult r = Out(state_, n, a, key, sa_key, type);
    EXPECT_TRUE(r.good()) << "action " << static_cast<int>(a);
    state_ = r.state;
    return r;
  }
  void RegisterAll() {
    Apply(n1_, A::kRegister, 0, 0x11);
    Apply(n2_, A::kRegister, 0, 0x22);
    Apply(n3_, A::kRegister, 0, 0x33);
  }

  PrState state_;
  scsi::Nexus n1_ = MakeNexus(1);
  scsi::Nexus n2_ = MakeNexus(2);
  scsi::Nexus n3_ = MakeNexus(3);
};

TEST_F(ProutTest, RegisterAddsKeyAndBumpsGeneration) {
  PrResult r = Apply(n1_, A::kRegister, 0, 0xabc);
  EXPECT_TRUE(r.changed);
  ASSERT_EQ(state_.registrations.size(), 1u);
  EXPECT_EQ(state_.registrations[0].key, 0xabcu);
  EXPECT_EQ(state_.generation, 1u);
  EXPECT_EQ(state_.registrations[0].port.InitiatorPort(), n1_.initiator_port);
}

TEST_F(ProutTest, RegisterUnregisteredWithNonzeroKeyConflicts) {
  PrResult r = Out(state_, n1_, A::kRegister, 0x1, 0x2);
  EXPECT_EQ(r.status, scsi::Status::kReservationConflict);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.state, state_);
}

TEST_F(ProutTest, RegisterWithZeroKeyWhenUnregisteredIsNoOp) {
  PrResult r = Out(state_, n1_, A::kRegister, 0, 0);
  EXPECT_TRUE(r.good());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.state.generation, 0u);
}

TEST_F(ProutTest, ReregisterWithWrongKeyConflictsWithoutChange) {
  Apply(n1_, A::kRegister, 0, 0x11);
  const PrState before = state_;
  PrResult r = Out(state_, n1_, A::kRegister, 0x99, 0x12);
  EXPECT_EQ(r.status, scsi::Status::kReservationConflict);
  EXPECT_EQ(r.state, before);
  // REGISTER AND IGNORE EXISTING KEY does not check it.
  Apply(n1_, A::kRegisterAndIgnoreExistingKey, 0x99, 0x12);
  EXPECT_EQ(state_.registrations[0].key, 0x12u);
  EXPECT_EQ(state_.generation, 2u);
}

TEST_F(ProutTest, RegisterChangesKeyAndUnregisters) {
  Apply(n1_, A::kRegister, 0, 0x11);
  Apply(n1_, A::kRegister, 0x11, 0x12);
  EXPECT_EQ(state_.registrations[0].key, 0x12u);
  Apply(n1_, A::kRegister, 0x12, 0);
  EXPECT_TRUE(state_.registrations.empty());
  EXPECT_EQ(state_.generation, 3u);
}

TEST_F(ProutTest, AptplFollowsTheLastRegister) {
  PrResult r = Out(state_, n1_, A::kRegister, 0, 0x11, 0, /*aptpl=*/true);
  ASSERT_TRUE(r.good());
  EXPECT_TRUE(r.state.aptpl);
  r = Out(r.state, n1_, A::kRegister, 0x11, 0x12, 0, /*aptpl=*/false);
  EXPECT_FALSE(r.state.aptpl);
}

TEST_F(ProutTest, ReserveEachTypeAndRepeatByHolder) {
  for (uint8_t type : kAllTypes) {
    state_ = PrState{};
    RegisterAll();
    const uint32_t gen = state_.generation;
    Apply(n1_, A::kReserve, 0x11, 0, type);
    EXPECT_EQ(static_cast<uint8_t>(state_.type), type);
    EXPECT_EQ(state_.generation, gen) << "RESERVE does not bump PRgeneration";
    EXPECT_EQ(state_.holder.has_value(), !IsAllRegistrantsType(state_.type));
    // Same type from the holder: GOOD, no change.
    PrResult again = Out(state_, n1_, A::kReserve, 0x11, 0, type);
    EXPECT_TRUE(again.good());
    EXPECT_FALSE(again.changed);
    // Another registrant: GOOD only for all-registrants (it is a holder too), else conflict.
    PrResult other = Out(state_, n2_, A::kReserve, 0x22, 0, type);
    EXPECT_EQ(other.good(), IsAllRegistrantsType(state_.type)) << int{type};
    // A different type from the holder conflicts.
    PrResult different = Out(state_, n1_, A::kReserve, 0x11, 0, type == 1 ? 3 : 1);
    EXPECT_EQ(different.status, scsi::Status::kReservationConflict);
    EXPECT_EQ(different.state, state_);
  }
}

TEST_F(ProutTest, ReserveNeedsRegistrationAndMatchingKey) {
  Apply(n1_, A::kRegister, 0, 0x11);
  EXPECT_EQ(Out(state_, n2_, A::kReserve, 0, 0, 1).status, scsi::Status::kReservationConflict);
  EXPECT_EQ(Out(state_, n1_, A::kReserve, 0x12, 0, 1).status, scsi::Status::kReservationConflict);
  EXPECT_FALSE(state_.Reserved());
}

TEST_F(ProutTest, ReleaseByHolderAndNonHolder) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 1);
  PrResult r = Out(state_, n2_, A::kRelease, 0x22, 0, 1);
  EXPECT_TRUE(r.good());
  EXPECT_FALSE(r.changed);  // Non-holder: GOOD, nothing released.
  r = Out(state_, n1_, A::kRelease, 0x11, 0, 3);
  EXPECT_TRUE(
      HasSense(r, scsi::SenseKey::kIllegalRequest, kAscInvalidReleaseOfPersistentReservation));
  EXPECT_TRUE(r.state.Reserved());
  r = Apply(n1_, A::kRelease, 0x11, 0, 1);
  EXPECT_FALSE(state_.Reserved());
  EXPECT_TRUE(r.unit_attentions.empty()) << "WE release tells nobody";
}

TEST_F(ProutTest, ReleaseOfRegistrantsOnlyTellsOtherRegistrants) {
  for (uint8_t type : {5, 6, 7, 8}) {
    state_ = PrState{};
    RegisterAll();
    Apply(n1_, A::kReserve, 0x11, 0, type);
    PrResult r = Apply(n1_, A::kRelease, 0x11, 0, type);
    ASSERT_EQ(r.unit_attentions.size(), 2u) << int{type};
    for (const PrUnitAttention& ua : r.unit_attentions) {
      EXPECT_FALSE(ua.port.Matches(n1_));
      EXPECT_EQ(ua.asc.asc, 0x2A);
      EXPECT_EQ(ua.asc.ascq, 0x04);
    }
  }
}

TEST_F(ProutTest, HolderUnregisteringReleasesReservation) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 5);  // WERO
  PrResult r = Apply(n1_, A::kRegister, 0x11, 0);
  EXPECT_FALSE(state_.Reserved());
  EXPECT_EQ(r.unit_attentions.size(), 2u);  // RESERVATIONS RELEASED for WERO.
  // All registrants: the reservation stays until the last registrant leaves.
  state_ = PrState{};
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 8);
  Apply(n1_, A::kRegister, 0x11, 0);
  Apply(n2_, A::kRegister, 0x22, 0);
  EXPECT_TRUE(state_.Reserved());
  Apply(n3_, A::kRegister, 0x33, 0);
  EXPECT_FALSE(state_.Reserved());
}

TEST_F(ProutTest, ClearRemovesEverythingAndTellsOthers) {
  RegisterAll();
  Apply(n2_, A::kReserve, 0x22, 0, 3);
  const uint32_t gen = state_.generation;
  PrResult r = Apply(n1_, A::kClear, 0x11, 0);
  EXPECT_TRUE(state_.registrations.empty());
  EXPECT_FALSE(state_.Reserved());
  EXPECT_EQ(state_.generation, gen + 1);
  ASSERT_EQ(r.unit_attentions.size(), 2u);
  EXPECT_EQ(r.unit_attentions[0].asc.ascq, 0x03);  // RESERVATIONS PREEMPTED
}

TEST_F(ProutTest, ClearFromUnregisteredConflicts) {
  RegisterAll();
  scsi::Nexus n4 = MakeNexus(4);
  PrResult r = Out(state_, n4, A::kClear, 0x11, 0);
  EXPECT_EQ(r.status, scsi::Status::kReservationConflict);
  EXPECT_EQ(r.state, state_);
}

TEST_F(ProutTest, PreemptHolderTakesReservation) {
  for (uint8_t type : {1, 3, 5, 6}) {
    state_ = PrState{};
    RegisterAll();
    Apply(n1_, A::kReserve, 0x11, 0, type);
    PrResult r = Apply(n2_, A::kPreempt, 0x22, 0x11, 3);
    EXPECT_TRUE(state_.IsHolder(n2_));
    EXPECT_EQ(state_.type, PrType::kExclusiveAccess);
    EXPECT_EQ(state_.Find(n1_), nullptr);
    EXPECT_NE(state_.Find(n3_), nullptr);
    bool preempted_ua = false;
    for (const PrUnitAttention& ua : r.unit_attentions) {
      preempted_ua = preempted_ua || (ua.port.Matches(n1_) && ua.asc.ascq == 0x05);
    }
    EXPECT_TRUE(preempted_ua) << int{type};
  }
}

TEST_F(ProutTest, PreemptNonHolderKeyRemovesRegistrationOnly) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 1);
  Apply(n2_, A::kPreempt, 0x22, 0x33, 1);
  EXPECT_TRUE(state_.IsHolder(n1_));
  EXPECT_EQ(state_.Find(n3_), nullptr);
  // A key nobody holds: RESERVATION CONFLICT, no change.
  const PrState before = state_;
  PrResult r = Out(state_, n2_, A::kPreempt, 0x22, 0x77, 1);
  EXPECT_EQ(r.status, scsi::Status::kReservationConflict);
  EXPECT_EQ(r.state, before);
}

TEST_F(ProutTest, PreemptWithoutReservationRemovesRegistrations) {
  RegisterAll();
  Apply(n1_, A::kPreempt, 0x11, 0x22, 1);
  EXPECT_EQ(state_.Find(n2_), nullptr);
  EXPECT_FALSE(state_.Reserved());
  PrResult r = Out(state_, n1_, A::kPreempt, 0x11, 0, 1);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
}

TEST_F(ProutTest, PreemptAllRegistrantsWithZeroKeyTakesEverything) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 7);
  PrResult r = Apply(n2_, A::kPreemptAndAbort, 0x22, 0, 1);
  EXPECT_EQ(state_.registrations.size(), 1u);
  EXPECT_TRUE(state_.IsHolder(n2_));
  EXPECT_EQ(state_.type, PrType::kWriteExclusive);
  EXPECT_EQ(r.aborted.size(), 2u);
}

TEST_F(ProutTest, PreemptAllRegistrantsWithKeyRemovesOnlyThatKey) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 8);
  Apply(n2_, A::kPreempt, 0x22, 0x33, 8);
  EXPECT_EQ(state_.type, PrType::kExclusiveAccessAllRegistrants);
  EXPECT_EQ(state_.registrations.size(), 2u);
}

TEST_F(ProutTest, RegisterAndMoveHandsReservationToAnotherPort) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 1);
  std::vector<uint8_t> p = ProutParams(0x11, 0x44);
  p[17] = 0x02;  // UNREG
  scsi::wire::Store16(&p[18], 1);
  const scsi::Nexus n4 = MakeNexus(4);
  const std::vector<uint8_t> tid = EncodeIscsiTransportId(PrPort::FromNexus(n4));
  scsi::wire::Store32(&p[20], static_cast<uint32_t>(tid.size()));
  p.insert(p.end(), tid.begin(), tid.end());
  const auto cdb = ProutCdb(A::kRegisterAndMove, 3, static_cast<uint32_t>(p.size()));
  PrResult r = PersistentReserveOut(state_, n1_, cdb, p);
  ASSERT_TRUE(r.good()) << static_cast<int>(r.status);
  EXPECT_TRUE(r.state.IsHolder(n4));
  EXPECT_EQ(r.state.type, PrType::kExclusiveAccess);
  EXPECT_EQ(r.state.Find(n1_), nullptr);
  ASSERT_NE(r.state.Find(n4), nullptr);
  EXPECT_EQ(r.state.Find(n4)->key, 0x44u);
  // Non-holders cannot move.
  PrResult again = PersistentReserveOut(r.state, n2_, cdb, p);
  EXPECT_EQ(again.status, scsi::Status::kReservationConflict);
}

TEST_F(ProutTest, RegisterAndMoveRejectsBadInputWithoutChange) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 1);
  const PrPort dest = PrPort::FromNexus(MakeNexus(4));
  auto move = [&](uint64_t sa_key, uint16_t rel_port, std::vector<uint8_t> tid, int32_t delta) {
    std::vector<uint8_t> p = ProutParams(0x11, sa_key);
    scsi::wire::Store16(&p[18], rel_port);
    scsi::wire::Store32(&p[20], static_cast<uint32_t>(tid.size()));
    p.insert(p.end(), tid.begin(), tid.end());
    const auto cdb = ProutCdb(A::kRegisterAndMove, 1, static_cast<uint32_t>(p.size() + delta));
    p.resize(p.size() + static_cast<size_t>(std::max(delta, 0)), 0);
    return PersistentReserveOut(state_, n1_, cdb, p);
  };
  const std::vector<uint8_t> good_tid = EncodeIscsiTransportId(dest);
  ASSERT_TRUE(move(0x44, 1, good_tid, 0).good());
  EXPECT_TRUE(HasSense(move(0, 1, good_tid, 0), scsi::SenseKey::kIllegalRequest,
                       scsi::kAscInvalidFieldInParameterList));
  EXPECT_TRUE(HasSense(move(0x44, 2, good_tid, 0), scsi::SenseKey::kIllegalRequest,
                       scsi::kAscInvalidFieldInParameterList));
  EXPECT_TRUE(HasSense(move(0x44, 1, EncodeIscsiTransportId(PrPort::FromNexus(n1_)), 0),
                       scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
  std::vector<uint8_t> bad_tid = good_tid;
  bad_tid[0] = 0x05;
  EXPECT_TRUE(HasSense(move(0x44, 1, bad_tid, 0), scsi::SenseKey::kIllegalRequest,
                       scsi::kAscInvalidFieldInParameterList));
  EXPECT_TRUE(HasSense(move(0x44, 1, good_tid, -4), scsi::SenseKey::kIllegalRequest,
                       scsi::kAscParameterListLengthError));
  for (const PrResult& r : {move(0, 1, good_tid, 0), move(0x44, 2, good_tid, 0)}) {
    EXPECT_EQ(r.state, state_);
  }
  // All-registrants reservations cannot be moved.
  state_ = PrState{};
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 7);
  EXPECT_EQ(move(0x44, 1, good_tid, 0).status, scsi::Status::kReservationConflict);
}

// --- Bad input: standard sense, no change. ---

TEST_F(ProutTest, WrongParameterListLengthIsLengthError) {
  RegisterAll();
  for (uint32_t length : {0u, 8u, 23u, 25u, 32u}) {
    const auto cdb = ProutCdb(A::kReserve, 1, length);
    std::vector<uint8_t> p = ProutParams(0x11, 0);
    p.resize(std::max<size_t>(length, 24), 0);
    PrResult r = PersistentReserveOut(state_, n1_, cdb, p);
    EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscParameterListLengthError))
        << length;
    EXPECT_FALSE(r.changed);
    EXPECT_EQ(r.state, state_);
  }
  // Fewer bytes received than the CDB announces.
  const auto cdb = ProutCdb(A::kRegister, 0, 24);
  std::vector<uint8_t> p = ProutParams(0, 0x55);
  p.resize(20);
  EXPECT_TRUE(HasSense(PersistentReserveOut(state_, MakeNexus(4), cdb, p),
                       scsi::SenseKey::kIllegalRequest, scsi::kAscParameterListLengthError));
}

TEST_F(ProutTest, UnknownServiceActionIsInvalidFieldInCdb) {
  const auto p = ProutParams(0, 0x11);
  for (uint8_t sa : {8, 9, 0x1F}) {
    auto cdb = ProutCdb(A::kRegister);
    cdb[1] = sa;
    PrResult r = PersistentReserveOut(state_, n1_, cdb, p);
    EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInCdb));
    ASSERT_TRUE(r.sense->has_field_pointer);
    EXPECT_TRUE(r.sense->in_cdb);
    EXPECT_EQ(r.sense->byte, 1);
    EXPECT_FALSE(r.changed);
  }
}

TEST_F(ProutTest, UnknownTypeOrScopeIsInvalidFieldInCdb) {
  RegisterAll();
  for (uint8_t type : {0, 2, 4, 9, 15}) {
    for (A a : {A::kReserve, A::kPreempt, A::kPreemptAndAbort}) {
      PrResult r = Out(state_, n1_, a, 0x11, 0x22, type);
      EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInCdb))
          << int{type};
      EXPECT_EQ(r.state, state_);
    }
  }
  const auto cdb = ProutCdb(A::kReserve, 1, 24, /*scope=*/1);
  PrResult r = PersistentReserveOut(state_, n1_, cdb, ProutParams(0x11, 0));
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInCdb));
}

// SpecIptParams: a REGISTER parameter list with SPEC_I_PT and TransportIDs of the given ports.
std::vector<uint8_t> SpecIptParams(uint64_t sa_key, const std::vector<scsi::Nexus>& nexuses) {
  std::vector<uint8_t> p = ProutParams(0, sa_key, false, 0x08);
  std::vector<uint8_t> tids;
  for (const scsi::Nexus& n : nexuses) {
    const std::vector<uint8_t> tid = EncodeIscsiTransportId(PrPort::FromNexus(n));
    tids.insert(tids.end(), tid.begin(), tid.end());
  }
  p.resize(28);
  wire::Store32(&p[24], static_cast<uint32_t>(tids.size()));
  p.insert(p.end(), tids.begin(), tids.end());
  return p;
}

TEST_F(ProutTest, SpecIptRegistersTheSpecifiedPortsAllOrNothing) {
  std::vector<uint8_t> p = SpecIptParams(0x77, {n2_, n3_, n2_, n1_});
  auto cdb = ProutCdb(A::kRegister, 0, static_cast<uint32_t>(p.size()));
  PrResult r = PersistentReserveOut(state_, n1_, cdb, p);
  ASSERT_TRUE(r.good());
  ASSERT_EQ(r.state.registrations.size(), 3u) << "self and duplicates once";
  for (const auto& n : {n1_, n2_, n3_}) {
    ASSERT_NE(r.state.Find(n), nullptr);
    EXPECT_EQ(r.state.Find(n)->key, 0x77u);
  }
  EXPECT_EQ(r.state.generation, 1u);

  // A specified port that is already registered fails the whole command.
  state_ = Out(state_, n3_, A::kRegister, 0, 0x33).state;
  p = SpecIptParams(0x77, {n2_, n3_});
  cdb = ProutCdb(A::kRegister, 0, static_cast<uint32_t>(p.size()));
  r = PersistentReserveOut(state_, n1_, cdb, p);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
  EXPECT_EQ(r.state, state_);

  // SPEC_I_PT from a registered nexus, or with another service action: invalid field.
  p = SpecIptParams(0x34, {n2_});
  wire::Store64(&p[0], 0x33);  // n3's own key: the key check passes, SPEC_I_PT does not.
  cdb = ProutCdb(A::kRegister, 0, static_cast<uint32_t>(p.size()));
  r = PersistentReserveOut(state_, n3_, cdb, p);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
  EXPECT_EQ(r.sense->byte, 20);
  wire::Store64(&p[0], 0);
  cdb = ProutCdb(A::kRegisterAndIgnoreExistingKey, 0, static_cast<uint32_t>(p.size()));
  r = PersistentReserveOut(state_, n1_, cdb, p);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
  EXPECT_EQ(r.sense->byte, 20);
  EXPECT_EQ(r.sense->bit, 3);

  // Lengths: the TransportID length must match the parameter list; garbage TransportIDs fail.
  p = SpecIptParams(0x77, {n2_});
  cdb = ProutCdb(A::kRegister, 0, static_cast<uint32_t>(p.size() - 1));
  r = PersistentReserveOut(state_, n1_, cdb, p);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscParameterListLengthError));
  cdb = ProutCdb(A::kRegister, 0, 24);
  r = PersistentReserveOut(state_, n1_, cdb, ProutParams(0, 0x11, false, 0x08));
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscParameterListLengthError));
  p = SpecIptParams(0x77, {n2_});
  p[28] = 0x01;  // FORMAT CODE 00b, PROTOCOL IDENTIFIER 1: not an iSCSI port TransportID.
  cdb = ProutCdb(A::kRegister, 0, static_cast<uint32_t>(p.size()));
  r = PersistentReserveOut(state_, n1_, cdb, p);
  EXPECT_TRUE(HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInParameterList));
  EXPECT_EQ(r.state, state_);
}

TEST_F(ProutTest, AllTgPtAccepted) {
  const auto cdb = ProutCdb(A::kRegister, 0, 24);
  PrResult r = PersistentReserveOut(state_, n1_, cdb, ProutParams(0, 0x11, false, 0x04));
  EXPECT_TRUE(r.good());
}

TEST_F(ProutTest, KeyMismatchConflictsForEveryAction) {
  RegisterAll();
  Apply(n1_, A::kReserve, 0x11, 0, 5);
  const PrState before = state_;
  for (A a :
       {A::kRegister, A::kReserve, A::kRelease, A::kClear, A::kPreempt, A::kPreemptAndAbort}) {
    PrResult r = Out(state_, n2_, a, 0x99, 0x11, 5);
    EXPECT_EQ(r.status, scsi::Status::kReservationConflict) << static_cast<int>(a);
    EXPECT_EQ(r.state, before);
    EXPECT_TRUE(r.unit_attentions.empty());
  }
}

TEST_F(ProutTest, Spc2ReservationOfAnotherNexusBlocksPrOut) {
  const auto reserve6 = std::array<uint8_t, 6>{kOpReserve6, 0, 0, 0, 0, 0};
  PrResult r = Spc2ReserveRelease(state_, n1_, reserve6);
  ASSERT_TRUE(r.changed);
  state_ = r.state;
  EXPECT_EQ(Out(state_, n2_, A::kRegister, 0, 0x22).status, scsi::Status::kReservationConflict);
  EXPECT_TRUE(Out(state_, n1_, A::kRegister, 0, 0x11).good());
}

}  // namespace
}  // namespace vios::reservation
