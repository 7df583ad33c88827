#include "common/util/base64.h"

#include <gtest/gtest.h>

namespace vios::util {
namespace {

TEST(Base64Test, RoundTripsEveryLengthModuloThree) {
  std::string data;
  for (int i = 0; i < 260; ++i) {
    auto back = Base64Decode(Base64Encode(data));
    ASSERT_TRUE(back.has_value()) << i;
    EXPECT_EQ(*back, data);
    data.push_back(static_cast<char>(i * 37));
  }
}

TEST(Base64Test, KnownVectorsFromRfc4648) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Decode("Zm9v\nYmE=").value_or("?"), "fooba");
}

TEST(Base64Test, RejectsMalformedText) {
  EXPECT_FALSE(Base64Decode("abc"));
  EXPECT_FALSE(Base64Decode("a$c="));
  EXPECT_FALSE(Base64Decode("Zg==Zg=="));  // padding in the middle
  EXPECT_FALSE(Base64Decode("Z==="));
  EXPECT_FALSE(Base64Decode("Zg=a"));
}

}  // namespace
}  // namespace vios::util
