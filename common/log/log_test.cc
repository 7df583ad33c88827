#include "common/log/log.h"

#include <gtest/gtest.h>

namespace vios::log {
namespace {

TEST(LogTest, EscapesControlCharactersAndQuotes) {
  std::string out;
  AppendJsonString(&out, "a\"b\\c\nd\x01");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
}

TEST(LogTest, ParsesLevelNamesAndRejectsOthers) {
  Level level = Level::kInfo;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("warn", &level));
  EXPECT_EQ(level, Level::kWarning);
  EXPECT_FALSE(ParseLevel("loud", &level));
  EXPECT_EQ(level, Level::kWarning);
}

TEST(LogTest, WritesOneJsonLinePerMessage) {
  testing::internal::CaptureStderr();
  VIOS_LOG(kWarning, "path lost").Field("backend", "san0").Field("errors", 3).Field("ok", false);
  std::string line = testing::internal::GetCapturedStderr();
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"path lost\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"backend\":\"san0\",\"errors\":3,\"ok\":false}"), std::string::npos)
      << line;
  EXPECT_EQ(line.back(), '\n');
}

TEST(LogTest, SuppressesLinesBelowLevel) {
  SetLevel(Level::kError);
  testing::internal::CaptureStderr();
  VIOS_LOG(kInfo, "quiet");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  SetLevel(Level::kInfo);
}

}  // namespace
}  // namespace vios::log
