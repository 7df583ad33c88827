// What one session's actions do to the other sessions of the same target: tasks aborted on behalf
// of another nexus (PREEMPT AND ABORT victims, LOGICAL UNIT RESET third parties), TARGET COLD RESET
// ending every session, and a Logout that waits for the commands still in the Device.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <future>

#include "node-agent/iscsi/server_fixture_test_util.h"

namespace vios::iscsi {
namespace {

using testing::kInitiatorName;
using testing::kTargetName;
using testing::TestInitiator;

using std::chrono::milliseconds;

class MultiSessionTest : public testing::ServerFixture {
 protected:
  static std::string InitiatorPort(const TestInitiator& ini) {
    std::array<uint8_t, 6> isid{};
    std::copy(std::begin(ini.isid), std::end(ini.isid), isid.begin());
    return std::string(kInitiatorName) + ",i,0x" + FormatIsid(isid);
  }

  // ExpectServed checks a session still gets a read answered.
  static void ExpectServed(TestInitiator& ini) {
    Bhs cmd = ini.Command(TestInitiator::Read10(0, 1), 512, true, false);
    ini.Send(cmd);
    auto r = ini.Receive();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->bhs.opcode(), Opcode::kDataIn);
    EXPECT_EQ(r->bhs.itt(), cmd.itt());
  }

  std::future<bool> AbortAsync(const std::string& initiator_port) {
    return std::async(std::launch::async, [this, initiator_port] {
      return registry_.AbortTasksOf(std::string(kTargetName) + ",t,0x0001", initiator_port,
                                    milliseconds(3000));
    });
  }
};

// PREEMPT AND ABORT (SPC-4, "Preempting and aborting"): the victim's tasks are aborted without
// responses and the caller is released only once the Device has let go of them; other nexuses are
// untouched.
TEST_F(MultiSessionTest, AbortTasksOfWaitsForTheVictimsTasksOnly) {
  StartServer();
  auto victim = LoggedIn(1);
  auto other = LoggedIn(2);
  device_.Hold(true);
  victim->Send(victim->Command(TestInitiator::Read10(0, 1), 512, true, false));
  Bhs other_cmd = other->Command(TestInitiator::Read10(8, 1), 512, true, false);
  other->Send(other_cmd);
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 2; }));

  auto aborted = AbortAsync(InitiatorPort(*victim));
  EXPECT_EQ(aborted.wait_for(milliseconds(300)), std::future_status::timeout)
      << "returned while the victim's read was still in the Device";
  device_.Hold(false);
  device_.ReleaseAll();
  EXPECT_TRUE(aborted.get());

  auto r = other->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kDataIn);
  EXPECT_EQ(r->bhs.itt(), other_cmd.itt());
  EXPECT_FALSE(victim->Receive(300)) << "an aborted task was answered";
  ExpectServed(*victim);  // The victim's session itself goes on.
}

TEST_F(MultiSessionTest, AbortTasksOfDoesNotWaitForReservationCommands) {
  StartServer();
  auto victim = LoggedIn(1);
  device_.Hold(true);
  // PERSISTENT RESERVE IN, READ KEYS: may sit in the PR worker behind the PREEMPT AND ABORT.
  std::vector<uint8_t> prin = {0x5e, 0x00, 0, 0, 0, 0, 0, 0x02, 0x00, 0};
  victim->Send(victim->Command(prin, 512, true, false));
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  auto aborted = AbortAsync(InitiatorPort(*victim));
  ASSERT_EQ(aborted.wait_for(milliseconds(2000)), std::future_status::ready);
  EXPECT_TRUE(aborted.get());
  device_.Hold(false);
  device_.ReleaseAll();
  EXPECT_FALSE(victim->Receive(300));
  ExpectServed(*victim);
}

TEST_F(MultiSessionTest, AbortTasksOfUnknownPortOrTargetIsANoOp) {
  StartServer();
  auto ini = LoggedIn(1);
  EXPECT_TRUE(registry_.AbortTasksOf("iqn.2026-11.dev.vios:elsewhere,t,0x0001", InitiatorPort(*ini),
                                     milliseconds(100)));
  EXPECT_TRUE(registry_.AbortTasksOf(std::string(kTargetName) + ",t,0x0001",
                                     "iqn.2026-11.dev.vios:nobody,i,0x000000000000",
                                     milliseconds(100)));
  ExpectServed(*ini);
}

// LOGICAL UNIT RESET aborts every nexus's tasks for the LU (SAM-5 §7.7); the response follows the
// end of the third party's task as well (RFC 7143 §4.2.3.2), which gets no response (TAS=0).
TEST_F(MultiSessionTest, LunResetWaitsForAndSilencesOtherSessionsTasks) {
  StartServer();
  auto third = LoggedIn(1);
  auto resetter = LoggedIn(2);
  device_.Hold(true);
  third->Send(third->Command(TestInitiator::Read10(0, 1), 512, true, false));
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  resetter->Send(resetter->TaskManagement(5));  // LOGICAL UNIT RESET, LUN 0.
  EXPECT_FALSE(resetter->Receive(300)) << "answered before the other session's task ended";
  device_.Hold(false);
  device_.ReleaseAll();
  auto r = resetter->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kTaskManagementResponse);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(TmfResponse::kComplete));
  EXPECT_EQ(device_.last_tmf.load(),
            static_cast<int>(scsi::TaskManagementFunction::kLogicalUnitReset));
  EXPECT_FALSE(third->Receive(300)) << "the third party's aborted read was answered";
  ExpectServed(*third);
  ExpectServed(*resetter);
}

TEST_F(MultiSessionTest, AbortTaskSetLeavesOtherSessionsAlone) {
  StartServer();
  auto other = LoggedIn(1);
  auto issuer = LoggedIn(2);
  device_.Hold(true);
  Bhs other_cmd = other->Command(TestInitiator::Read10(0, 1), 512, true, false);
  other->Send(other_cmd);
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  issuer->Send(issuer->TaskManagement(2));  // ABORT TASK SET: this nexus's tasks only (none).
  auto r = issuer->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kTaskManagementResponse);
  device_.Hold(false);
  device_.ReleaseAll();
  r = other->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.itt(), other_cmd.itt());
}

// RFC 7143 §11.5.1: after a TARGET COLD RESET the target closes all of its connections.
TEST_F(MultiSessionTest, TargetColdResetEndsEverySession) {
  StartServer();
  auto bystander = LoggedIn(1);
  auto resetter = LoggedIn(2);
  resetter->Send(resetter->TaskManagement(7));
  auto r = resetter->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(TmfResponse::kComplete));
  EXPECT_TRUE(resetter->WaitClosed());
  EXPECT_TRUE(bystander->WaitClosed());
  ExpectHealthy();  // New logins are served.
}

// A Logout while a read is in the Device: the read's data and status first, then the Logout
// Response, then the close.
TEST_F(MultiSessionTest, LogoutIsAnsweredAfterCommandsInFlight) {
  StartServer();
  auto ini = LoggedIn(1);
  device_.Hold(true);
  Bhs cmd = ini->Command(TestInitiator::Read10(0, 1), 512, true, false);
  ini->Send(cmd);
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  Bhs logout = ini->Logout();
  ini->Send(logout);
  EXPECT_FALSE(ini->Receive(300)) << "logout answered while a command was in the Device";
  device_.Hold(false);
  device_.ReleaseAll();
  auto data = ini->Receive();
  ASSERT_TRUE(data);
  EXPECT_EQ(data->bhs.opcode(), Opcode::kDataIn);
  EXPECT_EQ(data->bhs.itt(), cmd.itt());
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kLogoutResponse);
  EXPECT_EQ(r->bhs.itt(), logout.itt());
  EXPECT_GT(r->bhs.Field32(24), data->bhs.Field32(24)) << "StatSN order";
  EXPECT_TRUE(ini->WaitClosed());
}

}  // namespace
}  // namespace vios::iscsi
