// Login phase against the real Server over loopback, driven by the hand-written TestInitiator:
// negotiation answers, failure statuses for bad input, CHAP, ACL, discovery, reinstatement.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "node-agent/iscsi/chap.h"
#include "node-agent/iscsi/server_fixture_test_util.h"

namespace vios::iscsi {
namespace {

using testing::kInitiatorName;
using testing::kTargetName;
using testing::LoginStatusOf;
using testing::TestInitiator;

class LoginTest : public testing::ServerFixture {};

TEST_F(LoginTest, NegotiatesOperationalKeysAndAnswersUnknownOnes) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  TextKeys ops;
  ops.Add("HeaderDigest", "CRC32C,None");
  ops.Add("MaxRecvDataSegmentLength", "16384");
  ops.Add("MaxBurstLength", "99999999");
  ops.Add("ErrorRecoveryLevel", "1");
  ops.Add("X-com.example.Foo", "bar");
  ops.Add("IFMarker", "Yes");
  ASSERT_EQ(ini.LoginNone(kInitiatorName, kTargetName, ops), 0);
  TextKeys answer = ini.last_login.Keys();
  EXPECT_EQ(*answer.Find("HeaderDigest"), "CRC32C");
  EXPECT_EQ(*answer.Find("MaxBurstLength"), "Reject");  // Beyond 2^24-1.
  EXPECT_EQ(*answer.Find("ErrorRecoveryLevel"), "0");
  EXPECT_EQ(*answer.Find("X-com.example.Foo"), "NotUnderstood");
  EXPECT_EQ(*answer.Find("IFMarker"), "No");
  EXPECT_TRUE(answer.Has("MaxRecvDataSegmentLength"));
  EXPECT_NE(ini.tsih, 0);
  // Header digests are now in force both ways: a NOP round trip proves our CRC placement.
  ini.header_digest = true;
  ini.Send(ini.NopOut());
  auto r = ini.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kNopIn);
}

TEST_F(LoginTest, GarbageKeysGetInitiatorError) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  Bhs b;
  b.SetOpcode(Opcode::kLoginRequest);
  b.SetFlags(0x81);
  const std::string garbage("InitiatorName\0\xff\xfe=====\0", 22);
  ini.Send(b, std::vector<uint8_t>(garbage.begin(), garbage.end()));
  auto r = ini.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kLoginResponse);
  EXPECT_EQ(LoginStatusOf(*r), 0x0200);
  EXPECT_TRUE(ini.WaitClosed());
  ExpectHealthy();
}

TEST_F(LoginTest, MissingInitiatorNameIsMissingParameter) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  TextKeys keys;
  keys.Add("TargetName", kTargetName);
  auto r = ini.LoginStep(0, 1, true, keys);
  ASSERT_TRUE(r);
  EXPECT_EQ(LoginStatusOf(*r), 0x0207);
  EXPECT_TRUE(ini.WaitClosed());
}

TEST_F(LoginTest, NamesCompareCaseInsensitively) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  EXPECT_EQ(ini.LoginNone("IQN.2026-11.dev.VIOS:Client", "iqn.2026-11.DEV.vios:VOL1"), 0);
}

TEST_F(LoginTest, UnknownTargetIsNotFound) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  EXPECT_EQ(ini.LoginNone(kInitiatorName, "iqn.2026-11.dev.vios:nope"), 0x0203);
}

TEST_F(LoginTest, InitiatorNotInAclIsAuthorizationFailure) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  EXPECT_EQ(ini.LoginNone("iqn.2026-11.dev.vios:intruder", kTargetName), 0x0202);
  EXPECT_EQ(target_->counters().login_failures.load(), 1u);
  ExpectHealthy();
}

TEST_F(LoginTest, TargetRequiringChapRefusesAuthMethodNone) {
  TargetConfig config;
  config.chap = {"alice", "alicesecret123", "", ""};
  StartServer(config);
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  EXPECT_EQ(ini.LoginNone(kInitiatorName, kTargetName), 0x0201);
}

TEST_F(LoginTest, RejectsChapResponseWithWrongSecret) {
  TargetConfig config;
  config.chap = {"alice", "alicesecret123", "", ""};
  StartServer(config);
  for (const std::string secret : {"alicesecret123", "wrongsecret456"}) {
    TestInitiator ini;
    ASSERT_TRUE(ini.Connect(port_));
    TextKeys k1;
    k1.Add("InitiatorName", kInitiatorName);
    k1.Add("TargetName", kTargetName);
    k1.Add("AuthMethod", "CHAP,None");
    auto r = ini.LoginStep(0, 1, false, k1);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r->Keys().Find("AuthMethod"), "CHAP");
    TextKeys k2;
    k2.Add("CHAP_A", "5");
    r = ini.LoginStep(0, 1, false, k2);
    ASSERT_TRUE(r);
    TextKeys challenge = r->Keys();
    auto id = ParseNumber(*challenge.Find("CHAP_I"));
    auto c = DecodeBinary(*challenge.Find("CHAP_C"));
    ASSERT_TRUE(id && c);
    TextKeys k3;
    k3.Add("CHAP_N", "alice");
    k3.Add("CHAP_R", EncodeHex(ChapResponse(static_cast<uint8_t>(*id), secret, *c)));
    r = ini.LoginStep(0, 1, true, k3);
    ASSERT_TRUE(r);
    if (secret == "alicesecret123") {
      EXPECT_EQ(LoginStatusOf(*r), 0);
      EXPECT_EQ(r->bhs.flags() & 0x80, 0x80);  // Transit to the operational stage.
    } else {
      EXPECT_EQ(LoginStatusOf(*r), 0x0201);
      EXPECT_TRUE(ini.WaitClosed());
    }
  }
}

TEST_F(LoginTest, InvalidStageTransitionIsInitiatorError) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  TextKeys keys;
  keys.Add("InitiatorName", kInitiatorName);
  keys.Add("TargetName", kTargetName);
  auto r = ini.LoginStep(1, 0, true, keys);  // Backwards: operational -> security.
  ASSERT_TRUE(r);
  EXPECT_EQ(LoginStatusOf(*r), 0x0200);
}

TEST_F(LoginTest, NonLoginPduBeforeLoginClosesConnection) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  ini.Send(ini.NopOut());
  EXPECT_TRUE(ini.WaitClosed());
  ExpectHealthy();
}

TEST_F(LoginTest, DiscoverySendTargetsListsOnlyVisibleTargets) {
  StartServer();
  TargetConfig other;
  other.iqn = "iqn.2026-11.dev.vios:other";
  other.allowed_initiators = {"iqn.2026-11.dev.vios:someone-else"};
  ASSERT_TRUE(registry_.Add(std::make_shared<Target>(other, &device_)));
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  ASSERT_EQ(ini.LoginNone(kInitiatorName, ""), 0);
  Bhs text;
  text.SetOpcode(Opcode::kTextRequest);
  text.bytes[0] |= 0x40;
  text.SetFlags(0x80);
  text.SetItt(77);
  text.SetField32(20, kReservedTag);
  text.SetField32(24, ini.cmd_sn);
  const std::string st("SendTargets=All\0", 16);
  ini.Send(text, std::vector<uint8_t>(st.begin(), st.end()));
  auto r = ini.Receive();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->bhs.opcode(), Opcode::kTextResponse);
  std::string body(r->data.begin(), r->data.end());
  EXPECT_NE(body.find(std::string("TargetName=") + kTargetName), std::string::npos);
  EXPECT_NE(body.find("TargetAddress=127.0.0.1:" + std::to_string(port_) + ",1"),
            std::string::npos);
  EXPECT_EQ(body.find("other"), std::string::npos);
  // SCSI commands have no place in a discovery session.
  ini.Send(ini.Command(TestInitiator::Read10(0, 1), 512, true, false));
  auto reject = ini.Receive();
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->bhs.opcode(), Opcode::kReject);
  EXPECT_TRUE(ini.WaitClosed());
}

TEST_F(LoginTest, SameIsidReinstatesSessionAndClosesOldOne) {
  StartServer();
  auto first = LoggedIn(7);
  auto second = LoggedIn(7);
  EXPECT_TRUE(first->WaitClosed());
  second->Send(second->NopOut());
  auto r = second->Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bhs.opcode(), Opcode::kNopIn);
  EXPECT_TRUE(WaitFor([&] { return device_.nexus_removed.load() == 1; }));
}

TEST_F(LoginTest, RemovingTargetClosesItsSessions) {
  StartServer();
  auto ini = LoggedIn();
  ASSERT_TRUE(registry_.Remove(kTargetName));
  EXPECT_TRUE(ini->WaitClosed());
  EXPECT_EQ(device_.nexus_removed.load(), 1);
  TestInitiator again;
  ASSERT_TRUE(again.Connect(port_));
  EXPECT_EQ(again.LoginNone(kInitiatorName, kTargetName), 0x0203);
}

TEST_F(LoginTest, TargetOnOtherPortalGroupIsInvisibleHere) {
  TargetConfig config;
  config.portal_groups = {2};
  StartServer(config);
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  EXPECT_EQ(ini.LoginNone(kInitiatorName, kTargetName), 0x0203);
  std::string error;
  uint16_t port2 = server_->AddPortal("127.0.0.1", 0, 2, &error);
  ASSERT_NE(port2, 0) << error;
  TestInitiator ok;
  ASSERT_TRUE(ok.Connect(port2));
  EXPECT_EQ(ok.LoginNone(kInitiatorName, kTargetName), 0);
  TextKeys first = ok.first_login.Keys();
  ASSERT_TRUE(first.Has("TargetPortalGroupTag"));
  EXPECT_EQ(*first.Find("TargetPortalGroupTag"), "2");
}

TEST_F(LoginTest, LoginTextSplitOverContinuationPdus) {
  StartServer();
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  std::string text = std::string("InitiatorName=") + kInitiatorName + '\0' +
                     "TargetName=" + kTargetName + '\0' + "AuthMethod=None" + '\0';
  size_t half = text.size() / 2;  // Splits a key=value pair in the middle.
  Bhs b;
  b.SetOpcode(Opcode::kLoginRequest);
  b.bytes[0] |= 0x40;
  b.SetFlags(0x40 | 0x01);  // C, CSG=0, NSG=1.
  b.bytes[8] = 0x80;
  b.SetItt(1);
  ini.Send(b, std::vector<uint8_t>(text.begin(), text.begin() + half));
  auto ack = ini.Receive();
  ASSERT_TRUE(ack);
  EXPECT_EQ(LoginStatusOf(*ack), 0);
  EXPECT_EQ(ack->data.size(), 0u);
  EXPECT_EQ(ack->bhs.flags() & 0xc0, 0);  // Neither T nor C: "send the rest".
  b.SetFlags(0x80 | 0x01);                // T, CSG=0, NSG=1.
  ini.Send(b, std::vector<uint8_t>(text.begin() + half, text.end()));
  auto r = ini.Receive();
  ASSERT_TRUE(r);
  EXPECT_EQ(LoginStatusOf(*r), 0);
  EXPECT_EQ(*r->Keys().Find("AuthMethod"), "None");
  EXPECT_EQ(r->bhs.flags() & 0x80, 0x80);
}

TEST_F(LoginTest, LongSendTargetsAnswerIsContinued) {
  StartServer();
  for (int i = 0; i < 40; ++i) {
    TargetConfig extra;
    extra.iqn = "iqn.2026-11.dev.vios:volume-with-a-rather-long-name-" + std::to_string(i);
    extra.allowed_initiators = {"*"};
    ASSERT_TRUE(registry_.Add(std::make_shared<Target>(extra, &device_)));
  }
  TestInitiator ini;
  ASSERT_TRUE(ini.Connect(port_));
  TextKeys ops;
  ops.Add("MaxRecvDataSegmentLength", "512");
  ASSERT_EQ(ini.LoginNone(kInitiatorName, "", ops), 0);
  Bhs text;
  text.SetOpcode(Opcode::kTextRequest);
  text.bytes[0] |= 0x40;
  text.SetFlags(0x80);
  text.SetItt(5);
  text.SetField32(20, kReservedTag);
  const std::string st("SendTargets=All\0", 16);
  ini.Send(text, std::vector<uint8_t>(st.begin(), st.end()));
  std::string all;
  int pdus = 0;
  while (true) {
    auto r = ini.Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->bhs.opcode(), Opcode::kTextResponse);
    ASSERT_LE(r->data.size(), 512u);
    all.append(r->data.begin(), r->data.end());
    ++pdus;
    if (r->bhs.flags() & 0x80) break;
    ASSERT_EQ(r->bhs.flags() & 0x40, 0x40);  // C: more to come.
    text.SetFlags(0x80);
    text.SetField32(20, r->bhs.Field32(20));  // Echo the TTT with an empty request.
    ini.Send(text);
  }
  EXPECT_GT(pdus, 4);
  // Repeated keys (TargetName, TargetAddress) are fine in SendTargets; count the names.
  size_t names = 0;
  for (size_t pos = 0; (pos = all.find("TargetName=", pos)) != std::string::npos; ++pos) ++names;
  EXPECT_EQ(names, 41u);
}

TEST_F(LoginTest, RemovingTargetWaitsForInFlightCommands) {
  StartServer();
  device_.Hold(true);
  auto ini = LoggedIn();
  ini->Send(ini->Command(TestInitiator::Read10(0, 1), 512, true, false));
  ASSERT_TRUE(WaitFor([&] { return device_.HeldCount() == 1; }));
  std::atomic<bool> removed{false};
  std::thread remover([&] {
    registry_.Remove(kTargetName);
    removed = true;
  });
  EXPECT_TRUE(ini->WaitClosed());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(removed.load());  // The Device still holds a task of that target.
  device_.ReleaseAll();
  remover.join();
  EXPECT_TRUE(removed.load());
  EXPECT_EQ(device_.nexus_removed.load(), 1);
}

}  // namespace
}  // namespace vios::iscsi
