#include "common/util/quantity.h"

#include <gtest/gtest.h>

namespace vios::util {
namespace {

TEST(QuantityTest, ParsesPlainBinaryAndDecimalSuffixes) {
  EXPECT_EQ(ParseByteQuantity("4096"), 4096u);
  EXPECT_EQ(ParseByteQuantity("64Mi"), 64ull << 20);
  EXPECT_EQ(ParseByteQuantity("10Gi"), 10ull << 30);
  EXPECT_EQ(ParseByteQuantity("1G"), 1000000000ull);
  EXPECT_EQ(ParseByteQuantity("2k"), 2000ull);
}

TEST(QuantityTest, RejectsGarbageFractionsAndOverflow) {
  EXPECT_FALSE(ParseByteQuantity(""));
  EXPECT_FALSE(ParseByteQuantity("Gi"));
  EXPECT_FALSE(ParseByteQuantity("1.5Gi"));
  EXPECT_FALSE(ParseByteQuantity("-1"));
  EXPECT_FALSE(ParseByteQuantity("10 Gi"));
  EXPECT_FALSE(ParseByteQuantity("10gi"));
  EXPECT_FALSE(ParseByteQuantity("99999999999999999999"));
  EXPECT_FALSE(ParseByteQuantity("99999999Pi"));
}

TEST(QuantityTest, FormatsWithLargestExactBinarySuffix) {
  EXPECT_EQ(FormatByteQuantity(64ull << 20), "64Mi");
  EXPECT_EQ(FormatByteQuantity(1536ull << 20), "1536Mi");
  EXPECT_EQ(FormatByteQuantity(1000), "1000");
  EXPECT_EQ(FormatByteQuantity(0), "0");
}

}  // namespace
}  // namespace vios::util
