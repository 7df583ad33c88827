// block_stamp_test: stamped blocks verify, and every kind of damage is told apart.
#include "bench/loadgen/block_stamp.h"

#include <gtest/gtest.h>

#include <vector>

namespace vios::bench {
namespace {

TEST(BlockStampTest, FreshStampVerifies) {
  for (size_t size : {512u, 4096u}) {
    std::vector<uint8_t> block(size);
    StampBlock(block, 1234, 7, 99);
    uint64_t found = 0;
    EXPECT_EQ(CheckBlock(block, 1234, 7, &found), StampStatus::kOk);
    EXPECT_EQ(found, 7u);
    EXPECT_EQ(CheckBlock(block, 1234, 0, nullptr), StampStatus::kOk);
  }
}

TEST(BlockStampTest, DetectsEachKindOfDamage) {
  std::vector<uint8_t> block(4096);
  StampBlock(block, 10, 3, 1);

  EXPECT_EQ(CheckBlock(block, 11, 3, nullptr), StampStatus::kWrongLba);
  EXPECT_EQ(CheckBlock(block, 10, 4, nullptr), StampStatus::kWrongGeneration);

  auto flipped = block;
  flipped[4000] ^= 0x01;  // One bit in the payload.
  EXPECT_EQ(CheckBlock(flipped, 10, 3, nullptr), StampStatus::kBadChecksum);

  auto header = block;
  header[9] ^= 0x80;  // The LBA field: the checksum catches it before the LBA compare.
  EXPECT_EQ(CheckBlock(header, 10, 3, nullptr), StampStatus::kBadChecksum);

  auto magic = block;
  magic[0] = 'X';
  EXPECT_EQ(CheckBlock(magic, 10, 3, nullptr), StampStatus::kBadMagic);

  std::vector<uint8_t> zeros(4096);
  EXPECT_EQ(CheckBlock(zeros, 10, 0, nullptr), StampStatus::kUnwritten);
}

TEST(BlockStampTest, SwappedWordsAndStaleGenerationsDiffer) {
  std::vector<uint8_t> a(512);
  std::vector<uint8_t> b(512);
  StampBlock(a, 5, 1, 1);
  StampBlock(b, 5, 2, 1);
  EXPECT_NE(a, b);  // A stale write is distinguishable byte for byte.
  auto swapped = a;
  std::swap_ranges(swapped.begin() + 64, swapped.begin() + 72, swapped.begin() + 128);
  EXPECT_EQ(CheckBlock(swapped, 5, 1, nullptr), StampStatus::kBadChecksum);
}

}  // namespace
}  // namespace vios::bench
