// Tests of the ClusterMessage codec: round trip and refusal of malformed peer input.
#include "node-agent/peer/peer_message.h"

#include <gtest/gtest.h>

namespace vios::agent::peer {
namespace {

events::Message Sample() {
  events::Message m;
  m.type = events::MessageType::kMemberDown;
  m.source = "node-a";
  m.subject = "member/node-c";
  m.text = "member node-c is Down";
  m.attributes = {{"peerAddress", "127.0.0.3:7443"}};
  m.sequence = 42;
  return m;
}

TEST(PeerMessageTest, RoundTripKeepsEveryField) {
  events::Message in = Sample();
  events::Message out = FromProto(ToProto(in));
  EXPECT_EQ(out.type, in.type);
  EXPECT_EQ(out.source, in.source);
  EXPECT_EQ(out.subject, in.subject);
  EXPECT_EQ(out.text, in.text);
  EXPECT_EQ(out.attributes, in.attributes);
  EXPECT_EQ(out.sequence, 42u);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::microseconds>(out.time - in.time).count(), 0);
}

TEST(PeerMessageTest, UnknownTypeIsRefusedByName) {
  auto pm = ToProto(Sample());
  pm.set_type("FromTheFuture");
  try {
    FromProto(pm);
    FAIL() << "accepted an unknown type";
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("FromTheFuture"), std::string::npos) << e.what();
  }
}

TEST(PeerMessageTest, EmptySourceIsRefused) {
  auto pm = ToProto(Sample());
  pm.set_source("");
  EXPECT_THROW(FromProto(pm), MessageError);
}

TEST(PeerMessageTest, OversizedFieldsAreRefused) {
  auto pm = ToProto(Sample());
  pm.set_text(std::string(kMaxTextBytes + 1, 'x'));
  EXPECT_THROW(FromProto(pm), MessageError);

  pm = ToProto(Sample());
  for (size_t i = 0; i <= kMaxAttributes; ++i) {
    (*pm.mutable_attributes())["k" + std::to_string(i)] = "v";
  }
  EXPECT_THROW(FromProto(pm), MessageError);

  pm = ToProto(Sample());
  (*pm.mutable_attributes())["big"] = std::string(kMaxValueBytes + 1, 'v');
  try {
    FromProto(pm);
    FAIL() << "accepted an oversized attribute";
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("attributes[big]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vios::agent::peer
