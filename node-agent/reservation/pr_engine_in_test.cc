// PrEngine PERSISTENT RESERVE IN (SPC-4 §6.15), TransportIDs, the access table and SPC-2
// RESERVE/RELEASE interaction.
#include <gtest/gtest.h>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_test_util.h"

namespace vios::reservation {
namespace {

using testing::MakeNexus;
using testing::Out;
using testing::PrinCdb;
using A = ProutAction;
namespace wire = scsi::wire;

class PrinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = Out(state_, n1_, A::kRegister, 0, 0x1111).state;
    state_ = Out(state_, n2_, A::kRegister, 0, 0x2222).state;
  }
  std::vector<uint8_t> In(PrinAction a) {
    const auto cdb = PrinCdb(a);
    PrResult r = PersistentReserveIn(state_, n1_, cdb);
    EXPECT_TRUE(r.good());
    EXPECT_FALSE(r.changed);
    return r.data;
  }

  PrState state_;
  scsi::Nexus n1_ = MakeNexus(1);
  scsi::Nexus n2_ = MakeNexus(2);
};

TEST_F(PrinTest, ReadKeysListsGenerationAndKeys) {
  const std::vector<uint8_t> d = In(PrinAction::kReadKeys);
  ASSERT_EQ(d.size(), 24u);
  EXPECT_EQ(wire::Load32(&d[0]), 2u);
  EXPECT_EQ(wire::Load32(&d[4]), 16u);
  EXPECT_EQ(wire::Load64(&d[8]), 0x1111u);
  EXPECT_EQ(wire::Load64(&d[16]), 0x2222u);
}

TEST_F(PrinTest, ReadReservationReportsHolderKeyAndType) {
  EXPECT_EQ(In(PrinAction::kReadReservation).size(), 8u);
  state_ = Out(state_, n2_, A::kReserve, 0x2222, 0, 6).state;
  std::vector<uint8_t> d = In(PrinAction::kReadReservation);
  ASSERT_EQ(d.size(), 24u);
  EXPECT_EQ(wire::Load32(&d[4]), 16u);
  EXPECT_EQ(wire::Load64(&d[8]), 0x2222u);
  EXPECT_EQ(d[21], 0x06);
  // All registrants: key zero.
  state_ = Out(state_, n2_, A::kRelease, 0x2222, 0, 6).state;
  state_ = Out(state_, n2_, A::kReserve, 0x2222, 0, 7).state;
  d = In(PrinAction::kReadReservation);
  EXPECT_EQ(wire::Load64(&d[8]), 0u);
  EXPECT_EQ(d[21], 0x07);
}

TEST_F(PrinTest, ReportCapabilitiesAdvertisesWhatIsImplemented) {
  const std::vector<uint8_t> d = In(PrinAction::kReportCapabilities);
  ASSERT_EQ(d.size(), 8u);
  EXPECT_EQ(wire::Load16(&d[0]), 8u);
  EXPECT_NE(d[2] & 0x08, 0) << "SIP_C: SPEC_I_PT is implemented";
  EXPECT_NE(d[2] & 0x04, 0) << "ATP_C";
  EXPECT_NE(d[2] & 0x01, 0) << "PTPL_C";
  EXPECT_NE(d[3] & 0x80, 0) << "TMV";
  EXPECT_EQ(d[3] & 0x01, 0) << "PTPL_A off";
  EXPECT_EQ(d[4], 0xEA);
  EXPECT_EQ(d[5], 0x01);
}

TEST_F(PrinTest, ReadFullStatusCarriesIscsiTransportIds) {
  state_ = Out(state_, n1_, A::kReserve, 0x1111, 0, 1).state;
  const std::vector<uint8_t> d = In(PrinAction::kReadFullStatus);
  EXPECT_EQ(wire::Load32(&d[0]), state_.generation);
  EXPECT_EQ(wire::Load32(&d[4]), d.size() - 8);
  size_t at = 8;
  int descriptors = 0;
  while (at < d.size()) {
    const uint64_t key = wire::Load64(&d[at]);
    const bool holder = (d[at + 12] & 0x01) != 0;
    const uint32_t tid_len = wire::Load32(&d[at + 20]);
    EXPECT_EQ(wire::Load16(&d[at + 18]), 1u);
    size_t consumed = 0;
    std::optional<PrPort> port =
        DecodeIscsiTransportId(std::span<const uint8_t>(&d[at + 24], tid_len), &consumed);
    ASSERT_TRUE(port.has_value());
    EXPECT_EQ(consumed, tid_len);
    EXPECT_EQ(tid_len % 4, 0u);
    EXPECT_EQ(d[at + 24], 0x45);
    if (key == 0x1111) {
      EXPECT_TRUE(holder);
      EXPECT_EQ(d[at + 13], 0x01);
      EXPECT_EQ(port->InitiatorPort(), n1_.initiator_port);
    } else {
      EXPECT_FALSE(holder);
      EXPECT_EQ(port->InitiatorPort(), n2_.initiator_port);
    }
    at += 24 + tid_len;
    ++descriptors;
  }
  EXPECT_EQ(descriptors, 2);
}

TEST_F(PrinTest, UnknownServiceActionIsInvalidFieldInCdb) {
  auto cdb = PrinCdb(PrinAction::kReadKeys);
  cdb[1] = 0x04;
  PrResult r = PersistentReserveIn(state_, n1_, cdb);
  EXPECT_TRUE(testing::HasSense(r, scsi::SenseKey::kIllegalRequest, scsi::kAscInvalidFieldInCdb));
}

TEST_F(PrinTest, ApplyToTaskTruncatesToAllocationLength) {
  PrResult r = PersistentReserveIn(state_, n1_, PrinCdb(PrinAction::kReadKeys));
  std::array<uint8_t, 64> buffer{};
  scsi::Task task;
  task.data_in = buffer;
  ApplyToTask(r, 12, &task);
  EXPECT_EQ(task.status, scsi::Status::kGood);
  EXPECT_EQ(task.data_in_length, 12u);
  EXPECT_EQ(wire::Load32(&buffer[4]), 16u) << "ADDITIONAL LENGTH is the untruncated one";
}

TEST(TransportIdTest, RoundTripsAndRejectsGarbage) {
  const PrPort port = PrPort::FromNexus(MakeNexus(7));
  const std::vector<uint8_t> tid = EncodeIscsiTransportId(port);
  size_t consumed = 0;
  std::optional<PrPort> back = DecodeIscsiTransportId(tid, &consumed);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->initiatorName, port.initiatorName);
  EXPECT_EQ(back->isid, port.isid);
  std::vector<uint8_t> bad = tid;
  bad[0] = 0x05;  // Format 00b: a device, not a port.
  EXPECT_FALSE(DecodeIscsiTransportId(bad, &consumed).has_value());
  bad = tid;
  bad.resize(6);
  EXPECT_FALSE(DecodeIscsiTransportId(bad, &consumed).has_value());
  bad = tid;
  for (size_t i = 4; i < bad.size(); ++i) {
    bad[i] = 'x';  // No NUL.
  }
  EXPECT_FALSE(DecodeIscsiTransportId(bad, &consumed).has_value());
}

// --- Access rules (SPC-4 §5.13.1, SBC-3 §4.17). ---

constexpr std::array<uint8_t, 10> kRead10{0x28};
constexpr std::array<uint8_t, 10> kWrite10{0x2A};
constexpr std::array<uint8_t, 6> kInquiry{0x12};
constexpr std::array<uint8_t, 6> kTur{0x00};

struct AccessCase {
  uint8_t type;
  bool registered_read, registered_write, unregistered_read, unregistered_write;
};

TEST(AccessRulesTest, TableForEveryTypeAndNexusKind) {
  const AccessCase cases[] = {
      {1, true, false, true, false}, {3, false, false, false, false}, {5, true, true, true, false},
      {6, true, true, false, false}, {7, true, true, true, false},    {8, true, true, false, false},
  };
  const scsi::Nexus holder = MakeNexus(1), registered = MakeNexus(2), stranger = MakeNexus(3);
  for (const AccessCase& c : cases) {
    PrState s;
    s = Out(s, holder, A::kRegister, 0, 1).state;
    s = Out(s, registered, A::kRegister, 0, 2).state;
    s = Out(s, holder, A::kReserve, 1, 0, c.type).state;
    ASSERT_TRUE(s.Reserved());
    EXPECT_TRUE(Allows(s, holder, kWrite10));
    EXPECT_TRUE(Allows(s, holder, kRead10));
    EXPECT_EQ(Allows(s, registered, kRead10), c.registered_read) << int{c.type};
    EXPECT_EQ(Allows(s, registered, kWrite10), c.registered_write) << int{c.type};
    EXPECT_EQ(Allows(s, stranger, kRead10), c.unregistered_read) << int{c.type};
    EXPECT_EQ(Allows(s, stranger, kWrite10), c.unregistered_write) << int{c.type};
    EXPECT_TRUE(Allows(s, stranger, kInquiry));
    EXPECT_TRUE(Allows(s, stranger, kTur));
  }
}

TEST(AccessRulesTest, RegistrationsAloneRestrictNothing) {
  PrState s = Out(PrState{}, MakeNexus(1), A::kRegister, 0, 1).state;
  EXPECT_TRUE(Allows(s, MakeNexus(2), kWrite10));
}

TEST(AccessRulesTest, UnknownCommandsAreFencedAsWrites) {
  PrState s;
  s = Out(s, MakeNexus(1), A::kRegister, 0, 1).state;
  s = Out(s, MakeNexus(1), A::kReserve, 1, 0, 1).state;
  const std::array<uint8_t, 10> sync_cache{0x35};
  const std::array<uint8_t, 10> unknown{0xC7};
  EXPECT_FALSE(Allows(s, MakeNexus(2), sync_cache));
  EXPECT_FALSE(Allows(s, MakeNexus(2), unknown));
}

TEST(Spc2Test, ReserveReleaseAndPersistentInteraction) {
  const std::array<uint8_t, 6> reserve6{kOpReserve6};
  const std::array<uint8_t, 6> release6{kOpRelease6};
  const scsi::Nexus a = MakeNexus(1), b = MakeNexus(2);
  PrState s;
  PrResult r = Spc2ReserveRelease(s, a, reserve6);
  ASSERT_TRUE(r.good());
  s = r.state;
  EXPECT_EQ(Spc2ReserveRelease(s, b, reserve6).status, scsi::Status::kReservationConflict);
  EXPECT_FALSE(Allows(s, b, kTur));
  EXPECT_TRUE(Allows(s, b, kInquiry));
  EXPECT_FALSE(Spc2ReserveRelease(s, b, release6).changed) << "non-holder RELEASE: no-op";
  EXPECT_EQ(PersistentReserveIn(s, b, PrinCdb(PrinAction::kReadKeys)).status,
            scsi::Status::kReservationConflict);
  EXPECT_FALSE(NexusLost(s, a).spc2Holder.has_value());
  EXPECT_FALSE(AfterReset(s).spc2Holder.has_value());
  s = Spc2ReserveRelease(s, a, release6).state;
  EXPECT_FALSE(s.spc2Holder.has_value());
  // Registrations exist: RESERVE(6) conflicts (SPC-4 §5.13.3); a PR holder's is a no-op.
  s = Out(s, a, A::kRegister, 0, 1).state;
  EXPECT_EQ(Spc2ReserveRelease(s, b, reserve6).status, scsi::Status::kReservationConflict);
  s = Out(s, a, A::kReserve, 1, 0, 1).state;
  r = Spc2ReserveRelease(s, a, reserve6);
  EXPECT_TRUE(r.good());
  EXPECT_FALSE(r.changed);
}

}  // namespace
}  // namespace vios::reservation
