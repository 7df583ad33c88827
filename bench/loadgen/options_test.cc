// options_test: vios-loadgen's command line, including the bad inputs it must refuse.
#include "bench/loadgen/options.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace vios::bench {
namespace {

TEST(OptionsTest, ParsesAFullCommandLine) {
  std::string error;
  auto o = ParseOptions({"--rw", "randwrite", "--bs=128k", "--qd", "16", "--ios", "1000",
                         "--size-limit", "1g", "--verify", "--json", "--chap-user", "u",
                         "--chap-password", "p", "iscsi://127.0.0.1:3260/iqn.x:y/1"},
                        &error);
  ASSERT_TRUE(o) << error;
  EXPECT_EQ(o->pattern, Pattern::kRandWrite);
  EXPECT_EQ(o->block_bytes, 128u * 1024);
  EXPECT_EQ(o->queue_depth, 16u);
  EXPECT_EQ(o->ios, 1000u);
  EXPECT_EQ(o->size_limit, uint64_t{1} << 30);
  EXPECT_TRUE(o->verify);
  EXPECT_TRUE(o->json);
  EXPECT_EQ(o->chap_user, "u");
  EXPECT_EQ(o->duration_seconds, 0);  // --ios alone: no time limit.
}

TEST(OptionsTest, DefaultsToTenSecondsAndReadsChapFromEnvironment) {
  setenv("VIOS_CHAP_USER", "envuser", 1);
  setenv("VIOS_CHAP_PASSWORD", "envsecret", 1);
  std::string error;
  auto o = ParseOptions({"iscsi://127.0.0.1/iqn.x:y/0"}, &error);
  unsetenv("VIOS_CHAP_USER");
  unsetenv("VIOS_CHAP_PASSWORD");
  ASSERT_TRUE(o) << error;
  EXPECT_EQ(o->duration_seconds, 10);
  EXPECT_EQ(o->chap_user, "envuser");
  EXPECT_EQ(o->chap_password, "envsecret");
}

TEST(OptionsTest, RejectsBadInput) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"http://x/iqn/1"},
      {"--rw", "sideways", "iscsi://h/i/1"},
      {"--bs", "1000", "iscsi://h/i/1"},
      {"--bs", "4x", "iscsi://h/i/1"},
      {"--qd", "0", "iscsi://h/i/1"},
      {"--qd", "-3", "iscsi://h/i/1"},
      {"--rwmixread", "101", "iscsi://h/i/1"},
      {"--duration", "abc", "iscsi://h/i/1"},
      {"--chap-user", "u", "iscsi://h/i/1"},
      {"--bogus", "iscsi://h/i/1"},
      {"iscsi://h/i/1", "iscsi://h/i/2"},
      {"--qd"},
  };
  for (const auto& args : bad) {
    std::string error;
    EXPECT_FALSE(ParseOptions(args, &error));
    EXPECT_FALSE(error.empty()) << "no error for argument list of size " << args.size();
  }
}

TEST(OptionsTest, ParsesSizes) {
  uint64_t v = 0;
  EXPECT_TRUE(ParseSize("4k", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(ParseSize("2G", &v));
  EXPECT_EQ(v, uint64_t{2} << 30);
  EXPECT_FALSE(ParseSize("", &v));
  EXPECT_FALSE(ParseSize("k", &v));
  EXPECT_FALSE(ParseSize("99999999999999999999", &v));
  EXPECT_FALSE(ParseSize("17179869184T", &v));  // Overflows.
}

}  // namespace
}  // namespace vios::bench
