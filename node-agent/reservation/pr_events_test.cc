// DescribeChange: which reservation changes become Kubernetes Events, and what they say.
#include "node-agent/reservation/pr_events.h"

#include <gtest/gtest.h>

#include "node-agent/reservation/pr_test_util.h"

namespace vios::reservation {
namespace {

using testing::MakeNexus;
using testing::Out;
using A = ProutAction;

constexpr uint8_t kWeRo = 5;

struct Step {
  PrState before;
  PrState after;
  PrPort by;
};

Step Apply(const PrState& s, int i, A action, uint64_t key, uint64_t sa, uint8_t type = 0) {
  PrResult r = Out(s, MakeNexus(i), action, key, sa, type);
  EXPECT_EQ(r.status, scsi::Status::kGood);
  return Step{s, r.state, PrPort::FromNexus(MakeNexus(i))};
}

std::vector<PrEvent> Describe(const Step& st, A action) {
  return DescribeChange(st.before, st.after, st.by, action);
}

TEST(PrEventsTest, RegisterIsNotReportedReserveAndReleaseAre) {
  Step reg = Apply(PrState{}, 1, A::kRegister, 0, 0xa1);
  EXPECT_TRUE(Describe(reg, A::kRegister).empty());
  Step take = Apply(reg.after, 1, A::kReserve, 0xa1, 0, kWeRo);
  auto taken = Describe(take, A::kReserve);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].reason, "ReservationTaken");
  EXPECT_FALSE(taken[0].warning);
  EXPECT_NE(taken[0].note.find("WriteExclusiveRegistrantsOnly"), std::string::npos);
  EXPECT_NE(taken[0].note.find(MakeNexus(1).initiator_port), std::string::npos);
  Step release = Apply(take.after, 1, A::kRelease, 0xa1, 0, kWeRo);
  auto released = Describe(release, A::kRelease);
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].reason, "ReservationReleased");
  EXPECT_EQ(released[0].action, "Release");
  // The holder unregistering ends the reservation too (SPC-4 §5.13.11.3).
  Step take2 = Apply(release.after, 1, A::kReserve, 0xa1, 0, kWeRo);
  Step unreg = Apply(take2.after, 1, A::kRegister, 0xa1, 0);
  auto ended = Describe(unreg, A::kRegister);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, "ReservationReleased");
  EXPECT_EQ(ended[0].action, "Unregister");
}

TEST(PrEventsTest, PreemptNamesTheVictimsAndTheNewHolder) {
  PrState s = Apply(PrState{}, 1, A::kRegister, 0, 0xa1).after;
  s = Apply(s, 2, A::kRegister, 0, 0xb2).after;
  s = Apply(s, 1, A::kReserve, 0xa1, 0, kWeRo).after;
  Step pre = Apply(s, 2, A::kPreemptAndAbort, 0xb2, 0xa1, 3);
  auto events = Describe(pre, A::kPreemptAndAbort);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].warning);
  EXPECT_EQ(events[0].reason, "ReservationPreempted");
  EXPECT_EQ(events[0].action, "PreemptAndAbort");
  EXPECT_NE(events[0].note.find(MakeNexus(1).initiator_port), std::string::npos) << events[0].note;
  EXPECT_NE(
      events[0].note.find("ExclusiveAccess reservation held by " + MakeNexus(2).initiator_port),
      std::string::npos)
      << events[0].note;
  // The same preemption again describes itself the same way: EventRecorder aggregates it.
  EXPECT_EQ(Describe(pre, A::kPreemptAndAbort), events);
}

TEST(PrEventsTest, ClearIsAWarningWithTheCount) {
  PrState s = Apply(PrState{}, 1, A::kRegister, 0, 0xa1).after;
  s = Apply(s, 2, A::kRegister, 0, 0xb2).after;
  s = Apply(s, 2, A::kReserve, 0xb2, 0, kWeRo).after;
  auto events = Describe(Apply(s, 1, A::kClear, 0xa1, 0), A::kClear);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].warning);
  EXPECT_EQ(events[0].reason, "RegistrationsCleared");
  EXPECT_NE(events[0].note.find("cleared 2 registration(s) and the WriteExclusiveRegistrantsOnly"),
            std::string::npos)
      << events[0].note;
}

}  // namespace
}  // namespace vios::reservation
