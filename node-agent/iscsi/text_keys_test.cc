// Text key parsing limits and operational negotiation rules (RFC 7143 §6.1, §13).
#include "node-agent/iscsi/text_keys.h"

#include <gtest/gtest.h>

#include <string>

#include "node-agent/iscsi/negotiation.h"

namespace vios::iscsi {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(TextKeysTest, ParsesPairsInOrder) {
  TextKeys keys;
  std::string error;
  ASSERT_TRUE(keys.Parse(Bytes(std::string("A=1\0B=two\0", 10)), &error)) << error;
  ASSERT_EQ(keys.pairs().size(), 2u);
  EXPECT_EQ(*keys.Find("B"), "two");
  std::vector<uint8_t> out;
  keys.Serialize(&out);
  EXPECT_EQ(out, Bytes(std::string("A=1\0B=two\0", 10)));
}

TEST(TextKeysTest, RejectsGarbage) {
  std::string error;
  for (const std::string& bad :
       {std::string("A=1", 3), std::string("NoEquals\0", 9), std::string("=v\0", 3),
        std::string("A=1\0A=2\0", 8), std::string("K\xff=1\0", 5),
        std::string(64, 'K') + std::string("=1\0", 3), "K=" + std::string(256, 'v') + '\0'}) {
    TextKeys keys;
    EXPECT_FALSE(keys.Parse(Bytes(bad), &error)) << bad;
  }
  TextKeys keys;
  EXPECT_TRUE(keys.Parse(Bytes("CHAP_C=0x" + std::string(400, 'a') + '\0'), &error));
}

TEST(TextKeysTest, ParsesNumbersAndBinary) {
  EXPECT_EQ(ParseNumber("8192"), 8192u);
  EXPECT_EQ(ParseNumber("0x10"), 16u);
  EXPECT_FALSE(ParseNumber("12a"));
  EXPECT_FALSE(ParseNumber("99999999999999999999999"));
  EXPECT_EQ(DecodeBinary("0x0aff"), (std::vector<uint8_t>{0x0a, 0xff}));
  EXPECT_EQ(DecodeBinary("0x1"), (std::vector<uint8_t>{0x01}));
  EXPECT_EQ(DecodeBinary("0bAQID"), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_FALSE(DecodeBinary("0xzz"));
  EXPECT_FALSE(DecodeBinary("abc"));
  EXPECT_EQ(EncodeHex(std::vector<uint8_t>{0xde, 0xad}), "0xdead");
}

TEST(NegotiationTest, AppliesMinMaxAndBooleanRules) {
  TargetLimits limits;
  limits.max_burst_length = 65536;
  limits.first_burst_length = 16384;
  SessionParams params;
  Negotiator n(limits, &params);
  TextKeys response;
  EXPECT_TRUE(n.Respond("MaxBurstLength", "262144", &response));
  EXPECT_TRUE(n.Respond("FirstBurstLength", "262144", &response));
  EXPECT_TRUE(n.Respond("InitialR2T", "No", &response));
  EXPECT_TRUE(n.Respond("ImmediateData", "Yes", &response));
  EXPECT_TRUE(n.Respond("HeaderDigest", "CRC32C,None", &response));
  EXPECT_TRUE(n.Respond("DataDigest", "None", &response));
  EXPECT_TRUE(n.Respond("MaxRecvDataSegmentLength", "4096", &response));
  EXPECT_TRUE(n.Respond("ErrorRecoveryLevel", "2", &response));
  EXPECT_TRUE(n.Respond("MaxConnections", "8", &response));
  EXPECT_TRUE(n.Respond("DefaultTime2Wait", "0", &response));
  EXPECT_FALSE(n.Respond("X-Vendor-Key", "1", &response));
  n.Finish(&response);
  EXPECT_EQ(params.max_burst_length, 65536u);
  EXPECT_EQ(params.first_burst_length, 16384u);
  EXPECT_FALSE(params.initial_r2t);
  EXPECT_TRUE(params.header_digest);
  EXPECT_FALSE(params.data_digest);
  EXPECT_EQ(params.initiator_max_recv_data_segment_length, 4096u);
  EXPECT_EQ(params.target_max_recv_data_segment_length, limits.max_recv_data_segment_length);
  EXPECT_EQ(*response.Find("ErrorRecoveryLevel"), "0");
  EXPECT_EQ(*response.Find("MaxConnections"), "1");
  EXPECT_EQ(*response.Find("DefaultTime2Wait"), "2");
  EXPECT_EQ(*response.Find("HeaderDigest"), "CRC32C");
  EXPECT_EQ(*response.Find("MaxRecvDataSegmentLength"),
            std::to_string(limits.max_recv_data_segment_length));
}

TEST(NegotiationTest, RejectsOutOfRangeValues) {
  TargetLimits limits;
  limits.allow_data_digest = false;
  SessionParams params;
  Negotiator n(limits, &params);
  TextKeys response;
  n.Respond("MaxBurstLength", "100", &response);
  n.Respond("MaxOutstandingR2T", "0", &response);
  n.Respond("ImmediateData", "Maybe", &response);
  n.Respond("DataDigest", "CRC32C", &response);
  EXPECT_EQ(*response.Find("MaxBurstLength"), "Reject");
  EXPECT_EQ(*response.Find("MaxOutstandingR2T"), "Reject");
  EXPECT_EQ(*response.Find("ImmediateData"), "Reject");
  EXPECT_EQ(*response.Find("DataDigest"), "Reject");
  EXPECT_EQ(params.max_burst_length, 262144u);  // Defaults kept.
}

}  // namespace
}  // namespace vios::iscsi
