// Full feature phase against the real Server over loopback: SCSI command/data/response rules and
// every bad input of DESIGN.md §10 — each affects only its own connection.
#include <gtest/gtest.h>

#include <numeric>

#include "node-agent/iscsi/server_fixture_test_util.h"

namespace vios::iscsi {
namespace {

using testing::kInitiatorName;
using testing::kTargetName;
using testing::TestInitiator;

class FullFeatureTest : public testing::ServerFixture {
 protected:
  static Bhs DataOut(const Bhs& command, uint32_t ttt, uint32_t data_sn, uint32_t offset,
                     bool final_bit) {
    Bhs b;
    b.SetOpcode(Opcode::kDataOut);
    b.SetFlags(final_bit ? 0x80 : 0);
    b.SetItt(command.itt());
    b.SetField32(20, ttt);
    b.SetField32(36, data_sn);
    b.SetField32(40, offset);
    return b;
  }
};

TEST_F(FullFeatureTest, ReadUnderflowReportsResidual) {
  StartServer();
  auto ini = LoggedIn();
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 1024, true, false));
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kDataIn);
  EXPECT_EQ(r->data.size(), 512u);
  EXPECT_EQ(r->bhs.flags(), 0x80 | 0x02 | 0x01);  // F, U, S.
  EXPECT_EQ(r->bhs.Field32(44), 512u);
}

TEST_F(FullFeatureTest, CheckConditionCarriesLengthPrefixedSense) {
  StartServer();
  auto ini = LoggedIn();
  ini->Send(ini->Command({0xee, 0, 0, 0, 0, 0}, 0, false, false));
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->bhs.opcode(), Opcode::kScsiResponse);
  EXPECT_EQ(r->bhs.bytes[3], 0x02);
  ASSERT_EQ(r->data.size(), 20u);
  EXPECT_EQ(LoadBe16(r->data.data()), 18);
  EXPECT_EQ(r->data[2 + 2] & 0x0f, 0x05);  // ILLEGAL REQUEST.
  EXPECT_EQ(target_->counters().errors.load(), 1u);
}

TEST_F(FullFeatureTest, WriteWithImmediateUnsolicitedAndSolicitedData) {
  StartServer();
  auto ini = std::make_unique<TestInitiator>();
  ASSERT_TRUE(ini->Connect(port_));
  TextKeys ops;
  ops.Add("InitialR2T", "No");
  ops.Add("ImmediateData", "Yes");
  ops.Add("FirstBurstLength", "1024");
  ops.Add("MaxBurstLength", "1024");
  ASSERT_EQ(ini->LoginNone(kInitiatorName, kTargetName, ops), 0);
  std::vector<uint8_t> data(2048);
  std::iota(data.begin(), data.end(), 1);
  Bhs cmd = ini->Command(TestInitiator::Write10(4, 4), 2048, false, true, /*final=*/false);
  ini->Send(cmd, std::span<const uint8_t>(data.data(), 512));                     // Immediate.
  ini->Send(DataOut(cmd, kReservedTag, 0, 512, true), {data.data() + 512, 512});  // Unsolicited.
  auto r2t = ini->Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->bhs.opcode(), Opcode::kR2t);
  EXPECT_EQ(r2t->bhs.Field32(40), 1024u);  // Buffer offset.
  EXPECT_EQ(r2t->bhs.Field32(44), 1024u);  // Desired length = MaxBurstLength.
  uint32_t ttt = r2t->bhs.Field32(20);
  ini->Send(DataOut(cmd, ttt, 0, 1024, false), {data.data() + 1024, 512});
  ini->Send(DataOut(cmd, ttt, 1, 1536, true), {data.data() + 1536, 512});
  auto rsp = ini->Receive();
  ASSERT_TRUE(rsp);
  ASSERT_EQ(rsp->bhs.opcode(), Opcode::kScsiResponse);
  EXPECT_EQ(rsp->bhs.bytes[3], 0);
  EXPECT_EQ(0, std::memcmp(device_.data().data() + 4 * 512, data.data(), 2048));
}

TEST_F(FullFeatureTest, UnknownOpcodeGetsRejectAndConnectionKeepsWorking) {
  StartServer();
  auto ini = LoggedIn();
  Bhs b;
  b.bytes[0] = 0x1c;  // Not an initiator opcode.
  b.SetFlags(0x80);
  ini->Send(b);
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->bhs.opcode(), Opcode::kReject);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(RejectReason::kCommandNotSupported));
  ASSERT_EQ(r->data.size(), kBhsLength);
  EXPECT_EQ(r->data[0], 0x1c);
  ini->Send(ini->NopOut());
  auto nop = ini->Receive();
  ASSERT_TRUE(nop);
  EXPECT_EQ(nop->bhs.opcode(), Opcode::kNopIn);
}

TEST_F(FullFeatureTest, OversizedDataSegmentIsRejectedAndClosed) {
  ServerConfig sc;
  sc.limits.max_recv_data_segment_length = 8192;
  StartServer({}, sc);
  auto ini = LoggedIn();
  std::vector<uint8_t> big(8192 + 512, 0xab);
  ini->Send(ini->NopOut(), big);
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kReject);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(RejectReason::kProtocolError));
  EXPECT_TRUE(ini->WaitClosed());
  ExpectHealthy();
}

TEST_F(FullFeatureTest, OutOfWindowCmdSnIsIgnored) {
  StartServer();
  auto ini = LoggedIn();
  Bhs high = ini->Command(TestInitiator::Read10(0, 1), 512, true, false);
  high.SetField32(24, ini->cmd_sn + 1000);  // Beyond MaxCmdSN.
  ini->Send(high);
  Bhs low = ini->Command(TestInitiator::Read10(0, 1), 512, true, false);
  low.SetField32(24, ini->cmd_sn - 10);  // Already used.
  ini->Send(low);
  EXPECT_FALSE(ini->Receive(300));
  ini->cmd_sn -= 2;  // Neither consumed a CmdSN.
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kDataIn);
  EXPECT_EQ(device_.submitted.load(), 1);
}

TEST_F(FullFeatureTest, TruncatedPduThenDisconnectLeavesOthersWorking) {
  StartServer();
  auto other = LoggedIn(2);
  auto ini = LoggedIn(3);
  Bhs cmd = ini->Command(TestInitiator::Read10(0, 1), 512, true, false);
  ini->SendBytes(std::span<const uint8_t>(cmd.bytes.data(), 20));
  ini->Disconnect();
  other->Send(other->NopOut());
  auto r = other->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kNopIn);
  EXPECT_TRUE(WaitFor([&] { return target_->counters().active_sessions.load() == 1; }));
}

TEST_F(FullFeatureTest, DisconnectInMiddleOfDataOutSequence) {
  StartServer();
  auto ini = LoggedIn();
  std::vector<uint8_t> data(4096, 0x5a);
  Bhs cmd = ini->Command(TestInitiator::Write10(0, 8), 4096, false, true);
  ini->Send(cmd, std::span<const uint8_t>(data.data(), 512));
  auto r2t = ini->Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->bhs.opcode(), Opcode::kR2t);
  ini->Send(DataOut(cmd, r2t->bhs.Field32(20), 0, 512, false), {data.data() + 512, 512});
  ini->Disconnect();
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(device_.submitted.load(), 0);  // Incomplete writes never reach the device.
  ExpectHealthy();
}

TEST_F(FullFeatureTest, LateTaskDoneAfterDisconnectIsSafe) {
  StartServer();
  device_.Hold(true);
  auto ini = LoggedIn();
  for (int i = 0; i < 4; ++i) {
    ini->Send(ini->Command(TestInitiator::Read10(0, 8), 4096, true, false));
  }
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 4; }));
  ini->Disconnect();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(server_->connection_count(), 1u);  // Kept alive for the device's tasks.
  device_.ReleaseAll();
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(device_.nexus_removed.load(), 1);
  device_.Hold(false);
  ExpectHealthy();
}

TEST_F(FullFeatureTest, AbortTaskWaitsForDeviceAndSuppressesResponse) {
  StartServer();
  device_.Hold(true);
  auto ini = LoggedIn();
  Bhs cmd = ini->Command(TestInitiator::Read10(0, 1), 512, true, false);
  ini->Send(cmd);
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  Bhs tmf;
  tmf.SetOpcode(Opcode::kTaskManagementRequest);
  tmf.bytes[0] |= 0x40;
  tmf.SetFlags(0x80 | 1);  // ABORT TASK.
  tmf.SetItt(ini->next_itt++);
  tmf.SetField32(20, cmd.itt());
  tmf.SetField32(24, ini->cmd_sn);
  tmf.SetField32(32, CmdSnOf(cmd));
  ini->Send(tmf);
  EXPECT_FALSE(ini->Receive(200));  // Not before the device let go of the task.
  device_.ReleaseAll();
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kTaskManagementResponse);
  EXPECT_EQ(r->bhs.bytes[2], 0);
  EXPECT_FALSE(ini->Receive(200));  // No Data-In / response for the aborted read.
  device_.Hold(false);
  tmf.SetItt(ini->next_itt++);
  tmf.SetField32(20, 12345);
  tmf.SetField32(32, ini->cmd_sn - 5);
  ini->Send(tmf);
  r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(TmfResponse::kTaskDoesNotExist));
}

// RFC 7143 §11.5.1: TARGET COLD RESET is a target reset the SCSI layer sees (power-on unit
// attention there), answered Function Complete, after which the target drops the connection.
TEST_F(FullFeatureTest, TargetColdResetResetsTheDeviceAndCloses) {
  StartServer();
  auto ini = LoggedIn();
  ini->Send(ini->TaskManagement(7));  // TARGET COLD RESET.
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kTaskManagementResponse);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(TmfResponse::kComplete));
  EXPECT_EQ(device_.last_tmf.load(),
            static_cast<int>(scsi::TaskManagementFunction::kTargetColdReset));
  EXPECT_TRUE(ini->WaitClosed());
}

TEST_F(FullFeatureTest, NopOutPingEchoesData) {
  StartServer();
  auto ini = LoggedIn();
  std::vector<uint8_t> ping(100);
  std::iota(ping.begin(), ping.end(), 0);
  Bhs nop = ini->NopOut();
  ini->Send(nop, ping);
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kNopIn);
  EXPECT_EQ(r->bhs.itt(), nop.itt());
  EXPECT_EQ(r->data, ping);
}

TEST_F(FullFeatureTest, IdleConnectionIsPingedAndClosedWhenSilent) {
  ServerConfig sc;
  sc.nop_interval = std::chrono::milliseconds(100);
  sc.nop_timeout = std::chrono::milliseconds(400);
  StartServer({}, sc);
  auto ini = LoggedIn();
  auto ping = ini->Receive(2000);
  ASSERT_TRUE(ping);
  ASSERT_EQ(ping->bhs.opcode(), Opcode::kNopIn);
  EXPECT_EQ(ping->bhs.itt(), kReservedTag);
  // Answer the first ping: the connection stays.
  Bhs answer;
  answer.SetOpcode(Opcode::kNopOut);
  answer.bytes[0] |= 0x40;
  answer.SetFlags(0x80);
  answer.SetItt(kReservedTag);
  answer.SetField32(20, ping->bhs.Field32(20));
  answer.SetField32(24, ini->cmd_sn);
  ini->Send(answer);
  auto second = ini->Receive(2000);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->bhs.opcode(), Opcode::kNopIn);
  // Ignore the second: the target gives up.
  EXPECT_TRUE(ini->WaitClosed(3000));
}

TEST_F(FullFeatureTest, LogoutRespondsAndCloses) {
  StartServer();
  auto ini = LoggedIn();
  ini->Send(ini->Logout());
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kLogoutResponse);
  EXPECT_EQ(r->bhs.bytes[2], 0);
  EXPECT_TRUE(ini->WaitClosed());
}

TEST_F(FullFeatureTest, DataDigestErrorIsRejectedAndCloses) {
  StartServer();
  auto ini = std::make_unique<TestInitiator>();
  ASSERT_TRUE(ini->Connect(port_));
  TextKeys ops;
  ops.Add("HeaderDigest", "CRC32C");
  ops.Add("DataDigest", "CRC32C");
  ASSERT_EQ(ini->LoginNone(kInitiatorName, kTargetName, ops), 0);
  ini->header_digest = true;
  ini->data_digest = true;
  std::vector<uint8_t> data(512, 1);
  ini->Send(ini->Command(TestInitiator::Write10(0, 1), 512, false, true), data);
  auto ok = ini->Receive();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->bhs.opcode(), Opcode::kScsiResponse);
  // Our own Data-In carries a correct data digest (and a header digest when both are on).
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
  auto read = ini->Receive();
  ASSERT_TRUE(read);
  EXPECT_EQ(read->bhs.opcode(), Opcode::kDataIn);
  EXPECT_TRUE(read->digests_ok);
  EXPECT_EQ(read->data, data);
  ini->Send(ini->Command(TestInitiator::Write10(0, 1), 512, false, true), data, {}, true);
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kReject);
  EXPECT_EQ(r->bhs.bytes[2], static_cast<uint8_t>(RejectReason::kDataDigestError));
  EXPECT_TRUE(ini->WaitClosed());
}

TEST_F(FullFeatureTest, WrongDataSnFailsOnlyThatCommand) {
  StartServer();
  auto ini = LoggedIn();
  std::vector<uint8_t> data(1024, 2);
  Bhs cmd = ini->Command(TestInitiator::Write10(0, 2), 1024, false, true);
  ini->Send(cmd);
  auto r2t = ini->Receive();
  ASSERT_TRUE(r2t);
  ASSERT_EQ(r2t->bhs.opcode(), Opcode::kR2t);
  uint32_t ttt = r2t->bhs.Field32(20);
  ini->Send(DataOut(cmd, ttt, 5, 0, false), {data.data(), 512});
  auto r = ini->Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->bhs.opcode(), Opcode::kScsiResponse);
  EXPECT_EQ(r->bhs.itt(), cmd.itt());
  EXPECT_EQ(r->bhs.bytes[3], 0x02);                                      // CHECK CONDITION
  EXPECT_EQ(r->data[2 + 2] & 0x0f, 0x0b);                                // ABORTED COMMAND
  EXPECT_EQ(r->data[2 + 12], 0x4b);                                      // DATA PHASE ERROR
  ini->Send(DataOut(cmd, ttt, 1, 512, true), {data.data() + 512, 512});  // Discarded.
  EXPECT_EQ(device_.submitted.load(), 0);
  ini->Send(ini->NopOut());
  auto nop = ini->Receive();
  ASSERT_TRUE(nop);
  EXPECT_EQ(nop->bhs.opcode(), Opcode::kNopIn);  // The connection lives on.
}

TEST_F(FullFeatureTest, WindowClosesWhileDeviceHoldsQueueDepthTasks) {
  ServerConfig sc;
  sc.queue_depth = 2;
  StartServer({}, sc);
  device_.Hold(true);
  auto ini = LoggedIn();
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 2; }));
  ini->Send(ini->NopOut());
  auto nop = ini->Receive();
  ASSERT_TRUE(nop);
  // ExpCmdSN advanced past both reads; MaxCmdSN = ExpCmdSN - 1: the window is closed.
  EXPECT_EQ(nop->bhs.Field32(32) + 1, nop->bhs.Field32(28));
  device_.ReleaseAll();
}

}  // namespace
}  // namespace vios::iscsi
