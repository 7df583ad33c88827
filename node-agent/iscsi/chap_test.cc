// CHAP exchange (RFC 7143 §12.1.3): one-way, mutual, and the failure cases.
#include "node-agent/iscsi/chap.h"

#include <gtest/gtest.h>

namespace vios::iscsi {
namespace {

struct Challenge {
  uint8_t id;
  std::vector<uint8_t> bytes;
};

Challenge Start(ChapAuthenticator* auth) {
  TextKeys request, response;
  request.Add("CHAP_A", "7,5");
  std::string why;
  EXPECT_EQ(auth->Step(request, &response, &why), ChapAuthenticator::Result::kContinue);
  EXPECT_EQ(*response.Find("CHAP_A"), "5");
  auto bytes = DecodeBinary(*response.Find("CHAP_C"));
  EXPECT_TRUE(bytes);
  EXPECT_EQ(bytes->size(), ChapAuthenticator::kChallengeLength);
  return {static_cast<uint8_t>(*ParseNumber(*response.Find("CHAP_I"))), *bytes};
}

TEST(ChapTest, KnownMd5Vector) {
  // MD5(0x01 || "secret" || 0x00 0x01 0x02) computed independently with Python's hashlib.
  auto r = ChapResponse(1, "secret", {0, 1, 2});
  EXPECT_EQ(EncodeHex(r), "0xc4081e0c9f89346155ddb08f0bf91611");
}

TEST(ChapTest, AcceptsCorrectResponse) {
  ChapCredentials creds{"user", "secretsecret12", "", ""};
  ChapAuthenticator auth(creds);
  Challenge c = Start(&auth);
  TextKeys request, response;
  request.Add("CHAP_N", "user");
  request.Add("CHAP_R", EncodeHex(ChapResponse(c.id, creds.secret, c.bytes)));
  std::string why;
  EXPECT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kSuccess) << why;
}

TEST(ChapTest, RejectsChapResponseWithWrongSecret) {
  ChapCredentials creds{"user", "secretsecret12", "", ""};
  ChapAuthenticator auth(creds);
  Challenge c = Start(&auth);
  TextKeys request, response;
  request.Add("CHAP_N", "user");
  request.Add("CHAP_R", EncodeHex(ChapResponse(c.id, "wrongsecret123", c.bytes)));
  std::string why;
  EXPECT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kFailure);
}

TEST(ChapTest, RejectsWrongNameAndGarbage) {
  ChapCredentials creds{"user", "secretsecret12", "", ""};
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"other", ""}, {"user", "0xzz"}, {"user", "0x00"}}) {
    ChapAuthenticator auth(creds);
    Challenge c = Start(&auth);
    TextKeys request, response;
    request.Add("CHAP_N", name);
    request.Add("CHAP_R",
                value.empty() ? EncodeHex(ChapResponse(c.id, creds.secret, c.bytes)) : value);
    std::string why;
    EXPECT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kFailure);
  }
}

TEST(ChapTest, RefusesAlgorithmsOtherThanMd5) {
  ChapCredentials creds{"user", "secretsecret12", "", ""};
  ChapAuthenticator auth(creds);
  TextKeys request, response;
  request.Add("CHAP_A", "6,7");
  std::string why;
  EXPECT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kFailure);
}

TEST(ChapTest, MutualAnswersInitiatorChallengeAndRefusesReflection) {
  ChapCredentials creds{"user", "secretsecret12", "target", "mutualsecret34"};
  ChapAuthenticator auth(creds);
  Challenge c = Start(&auth);
  TextKeys request, response;
  request.Add("CHAP_N", "user");
  request.Add("CHAP_R", EncodeHex(ChapResponse(c.id, creds.secret, c.bytes)));
  request.Add("CHAP_I", "77");
  std::vector<uint8_t> mine = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
  request.Add("CHAP_C", EncodeHex(mine));
  std::string why;
  ASSERT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kSuccess) << why;
  EXPECT_EQ(*response.Find("CHAP_N"), "target");
  EXPECT_EQ(*response.Find("CHAP_R"), EncodeHex(ChapResponse(77, "mutualsecret34", mine)));

  ChapAuthenticator reflected(creds);
  Challenge c2 = Start(&reflected);
  TextKeys request2, response2;
  request2.Add("CHAP_N", "user");
  request2.Add("CHAP_R", EncodeHex(ChapResponse(c2.id, creds.secret, c2.bytes)));
  request2.Add("CHAP_I", "1");
  request2.Add("CHAP_C", EncodeHex(c2.bytes));
  EXPECT_EQ(reflected.Step(request2, &response2, &why), ChapAuthenticator::Result::kFailure);
}

TEST(ChapTest, MutualConfiguredButNotRequestedFails) {
  ChapCredentials creds{"user", "secretsecret12", "target", "mutualsecret34"};
  ChapAuthenticator auth(creds);
  Challenge c = Start(&auth);
  TextKeys request, response;
  request.Add("CHAP_N", "user");
  request.Add("CHAP_R", EncodeHex(ChapResponse(c.id, creds.secret, c.bytes)));
  std::string why;
  EXPECT_EQ(auth.Step(request, &response, &why), ChapAuthenticator::Result::kFailure);
}

}  // namespace
}  // namespace vios::iscsi
