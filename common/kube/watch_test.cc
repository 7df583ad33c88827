// Unit tests for the incremental watch-line parser.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/kube/watch.h"

namespace vios::kube {
namespace {

std::string Line(const std::string& type, const std::string& name, const std::string& rv) {
  return nlohmann::json{{"type", type},
                        {"object",
                         {{"kind", "ConfigMap"},
                          {"metadata", {{"name", name}, {"resourceVersion", rv}}},
                          {"data", {{"text", "ü ünïcode"}}}}}}
             .dump() +
         "\n";
}

TEST(WatchLineParserTest, ReassemblesEventsFedByteByByte) {
  std::string stream = Line("ADDED", "a", "1") + Line("MODIFIED", "a", "2") +
                       Line("BOOKMARK", "", "3") + Line("DELETED", "a", "4");
  WatchLineParser parser;
  std::vector<WatchEvent> events;
  for (char c : stream) {
    for (auto& e : parser.Feed(std::string_view(&c, 1))) events.push_back(std::move(e));
  }
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(events[1].type, WatchEventType::kModified);
  EXPECT_EQ(events[2].type, WatchEventType::kBookmark);
  EXPECT_EQ(events[3].type, WatchEventType::kDeleted);
  EXPECT_EQ(events[3].object["metadata"]["resourceVersion"], "4");
  EXPECT_EQ(events[0].object["data"]["text"], "ü ünïcode");
  EXPECT_EQ(parser.Pending(), 0u);
}

TEST(WatchLineParserTest, KeepsPartialLineUntilNewline) {
  std::string line = Line("ADDED", "b", "9");
  WatchLineParser parser;
  EXPECT_TRUE(parser.Feed(line.substr(0, 10)).empty());
  EXPECT_EQ(parser.Pending(), 10u);
  auto events = parser.Feed(line.substr(10) + Line("MODIFIED", "b", "10").substr(0, 5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].object["metadata"]["name"], "b");
  EXPECT_EQ(parser.Pending(), 5u);
}

TEST(WatchLineParserTest, SkipsBlankLines) {
  WatchLineParser parser;
  auto events = parser.Feed("\n\r\n" + Line("ADDED", "c", "1") + "\n");
  EXPECT_EQ(events.size(), 1u);
}

TEST(WatchLineParserTest, ErrorEventCarriesStatus) {
  WatchLineParser parser;
  auto events =
      parser.Feed(R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})"
                  "\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, WatchEventType::kError);
  EXPECT_TRUE(IsExpired(ErrorFromStatus("WATCH", "/p", events[0].object)));
}

TEST(WatchLineParserTest, GarbageLineIsGarbageResponse) {
  WatchLineParser parser;
  try {
    parser.Feed("<html>proxy error</html>\n");
    FAIL() << "garbage accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kGarbageResponse);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("proxy error"));
  }
  EXPECT_THROW(parser.Feed(R"({"type":"EXPLODED","object":{}})"
                           "\n"),
               ApiError);
  EXPECT_THROW(parser.Feed(R"({"type":"ADDED"})"
                           "\n"),
               ApiError);
}

TEST(WatchLineParserTest, OverlongLineIsRejected) {
  WatchLineParser parser(16);
  EXPECT_THROW(parser.Feed(std::string(17, 'x')), ApiError);
  EXPECT_EQ(parser.Pending(), 0u);
}

}  // namespace
}  // namespace vios::kube
