// Tests of Kubernetes timestamp parsing and formatting.
#include "operator/api_time.h"

#include <gtest/gtest.h>

namespace vios::op {
namespace {

using std::chrono::microseconds;
using std::chrono::seconds;

TEST(ApiTimeTest, ParsesMicroTimeAndRoundTrips) {
  auto t = ParseApiTime(std::string_view("2026-11-25T21:49:03.123456Z"));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatMicroTime(*t), "2026-11-25T21:49:03.123456Z");
  EXPECT_EQ(FormatApiTime(*t), "2026-11-25T21:49:03Z");
}

TEST(ApiTimeTest, AppliesOffsets) {
  auto utc = ParseApiTime(std::string_view("2026-11-25T21:49:03Z"));
  auto plus = ParseApiTime(std::string_view("2026-11-25T22:49:03+01:00"));
  ASSERT_TRUE(utc && plus);
  EXPECT_EQ(*utc, *plus);
  auto epoch = ParseApiTime(std::string_view("1970-01-01T00:00:10Z"));
  ASSERT_TRUE(epoch);
  EXPECT_EQ(epoch->time_since_epoch(), seconds(10));
}

TEST(ApiTimeTest, RejectsGarbage) {
  for (const char* bad : {"", "2026-11-25", "2026-11-25T21:49:03", "2026-13-25T21:49:03Z",
                          "2026-11-25T21:49:03.Z", "2026-11-25T21:49:03Zjunk", "yesterday"}) {
    EXPECT_FALSE(ParseApiTime(std::string_view(bad)).has_value()) << bad;
  }
  EXPECT_FALSE(ParseApiTimeField(nlohmann::json(42)).has_value());
  EXPECT_FALSE(ParseApiTimeField(nlohmann::json()).has_value());
}

}  // namespace
}  // namespace vios::op
