// PrState JSON round trip (the future VIOSVolume.status.reservation) and malformed input.
#include <gtest/gtest.h>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_state.h"
#include "node-agent/reservation/pr_test_util.h"

namespace vios::reservation {
namespace {

using testing::MakeNexus;
using testing::Out;
using A = ProutAction;

PrState Sample(uint8_t type) {
  PrState s;
  s = Out(s, MakeNexus(1), A::kRegister, 0, 0xfedcba9876543210ull, 0, true).state;
  s = Out(s, MakeNexus(2), A::kRegister, 0, 0x22).state;
  s = Out(s, MakeNexus(1), A::kRegister, 0xfedcba9876543210ull, 0xfedcba9876543210ull, 0, true)
          .state;
  s = Out(s, MakeNexus(1), A::kReserve, 0xfedcba9876543210ull, 0, type).state;
  return s;
}

TEST(PrStateJsonTest, RoundTripsEveryType) {
  for (uint8_t type : {1, 3, 5, 6, 7, 8}) {
    const PrState s = Sample(type);
    ASSERT_TRUE(s.Reserved());
    std::string error;
    const std::string text = ToJson(s).dump();
    std::optional<PrState> back = PrStateFromJson(nlohmann::json::parse(text), &error);
    ASSERT_TRUE(back.has_value()) << error;
    EXPECT_EQ(*back, s);
    EXPECT_EQ(back->holder.has_value(), s.holder.has_value());
  }
}

TEST(PrStateJsonTest, UsesStableCamelCaseFieldsAndHexKeys) {
  PrState s = Sample(5);
  s.spc2Holder = PrPort::FromNexus(MakeNexus(3));
  const nlohmann::json j = ToJson(s);
  EXPECT_EQ(j["generation"], 3);
  EXPECT_EQ(j["aptpl"], true);
  EXPECT_EQ(j["registrations"][0]["key"], "0xfedcba9876543210");
  EXPECT_EQ(j["registrations"][0]["initiatorName"], "iqn.2026-11.dev.vios:init1");
  EXPECT_EQ(j["registrations"][0]["isid"], "23d000000001");
  EXPECT_EQ(j["registrations"][0]["relativeTargetPort"], 1);
  EXPECT_EQ(j["reservation"]["type"], "WriteExclusiveRegistrantsOnly");
  EXPECT_EQ(j["reservation"]["allRegistrants"], false);
  EXPECT_EQ(j["reservation"]["holder"]["targetPort"], "iqn.2026-11.dev.vios:target,t,0x1");
  EXPECT_TRUE(j.contains("spc2Holder"));
  std::string error;
  std::optional<PrState> back = PrStateFromJson(j, &error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(*back, s);
  EXPECT_FALSE(ToJson(PrState{}).contains("reservation"));
}

TEST(PrStateJsonTest, RejectsMalformedInputWithAReason) {
  const nlohmann::json good = ToJson(Sample(1));
  auto broken = [&](auto mutate) {
    nlohmann::json j = good;
    mutate(j);
    std::string error;
    EXPECT_FALSE(PrStateFromJson(j, &error).has_value()) << j.dump();
    EXPECT_FALSE(error.empty());
  };
  broken([](nlohmann::json& j) { j = nlohmann::json::array(); });
  broken([](nlohmann::json& j) { j["generation"] = -1; });
  broken([](nlohmann::json& j) { j["generation"] = "3"; });
  broken([](nlohmann::json& j) { j["registrations"][0]["key"] = 17; });
  broken([](nlohmann::json& j) { j["registrations"][0]["key"] = "0xzz"; });
  broken([](nlohmann::json& j) { j["registrations"][0]["key"] = "0x0"; });
  broken([](nlohmann::json& j) { j["registrations"][0]["isid"] = "12"; });
  broken([](nlohmann::json& j) { j["registrations"][1] = j["registrations"][0]; });
  broken([](nlohmann::json& j) { j["reservation"]["type"] = "Bogus"; });
  broken([](nlohmann::json& j) { j["reservation"].erase("holder"); });
  broken([](nlohmann::json& j) { j["reservation"]["holder"]["initiatorName"] = "iqn.other"; });
  broken([](nlohmann::json& j) { j["aptpl"] = 1; });
}

}  // namespace
}  // namespace vios::reservation
