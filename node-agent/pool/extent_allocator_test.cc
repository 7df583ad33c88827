// ExtentAllocator: first fit, spanning backends, no double allocation, coalescing frees.
#include "node-agent/pool/extent_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace vios::pool {
namespace {

constexpr uint64_t kExtent = 1 << 20;

TEST(ExtentAllocatorTest, FirstFitContiguous) {
  ExtentAllocator a(kExtent);
  ASSERT_TRUE(a.AddBackend("lun0", 10 * kExtent + 123));  // partial extent is unusable
  EXPECT_EQ(a.TotalBytes(), 10 * kExtent);
  auto x = a.Allocate(1);
  ASSERT_TRUE(x.has_value());
  ASSERT_EQ(x->size(), 1u);
  EXPECT_EQ((*x)[0], (Extent{"lun0", 0, kExtent}));
  auto y = a.Allocate(3 * kExtent);
  ASSERT_TRUE(y.has_value());
  EXPECT_EQ((*y)[0], (Extent{"lun0", kExtent, 3 * kExtent}));
  EXPECT_EQ(a.FreeBytes(), 6 * kExtent);
}

TEST(ExtentAllocatorTest, SpansRangesAndBackendsWhenNoSingleRangeFits) {
  ExtentAllocator a(kExtent);
  a.AddBackend("lun0", 4 * kExtent);
  a.AddBackend("lun1", 4 * kExtent);
  auto first = a.Allocate(3 * kExtent);  // lun0 [0,3)
  ASSERT_TRUE(first.has_value());
  auto big = a.Allocate(5 * kExtent);  // lun1 has 4 contiguous, so pieces: lun0 [3,4) + lun1 [0,4)
  ASSERT_TRUE(big.has_value());
  ASSERT_EQ(big->size(), 2u);
  EXPECT_EQ((*big)[0], (Extent{"lun0", 3 * kExtent, kExtent}));
  EXPECT_EQ((*big)[1], (Extent{"lun1", 0, 4 * kExtent}));
  EXPECT_EQ(a.FreeBytes(), 0u);
  EXPECT_FALSE(a.Allocate(1).has_value());
}

TEST(ExtentAllocatorTest, FullPoolChangesNothing) {
  ExtentAllocator a(kExtent);
  a.AddBackend("lun0", 4 * kExtent);
  EXPECT_FALSE(a.Allocate(5 * kExtent).has_value());
  EXPECT_EQ(a.FreeBytes(), 4 * kExtent);
}

TEST(ExtentAllocatorTest, MarkUsedDetectsDoubleAllocation) {
  ExtentAllocator a(kExtent);
  a.AddBackend("lun0", 8 * kExtent);
  std::string error;
  ASSERT_TRUE(a.MarkUsed({{"lun0", 2 * kExtent, 2 * kExtent}}, &error)) << error;
  EXPECT_FALSE(a.MarkUsed({{"lun0", 3 * kExtent, kExtent}}, &error));
  EXPECT_NE(error.find("already allocated"), std::string::npos);
  // Overlap within one call changes nothing.
  EXPECT_FALSE(
      a.MarkUsed({{"lun0", 5 * kExtent, kExtent}, {"lun0", 5 * kExtent, kExtent}}, &error));
  EXPECT_EQ(a.FreeBytes(), 6 * kExtent);
  EXPECT_FALSE(a.MarkUsed({{"lun0", 123, kExtent}}, &error));  // unaligned
  EXPECT_FALSE(a.MarkUsed({{"nope", 0, kExtent}}, &error));
  EXPECT_FALSE(a.MarkUsed({{"lun0", 7 * kExtent, 2 * kExtent}}, &error));  // beyond the end
  // Allocation skips the used range.
  auto x = a.Allocate(3 * kExtent);
  ASSERT_TRUE(x.has_value());
  EXPECT_EQ((*x)[0].offset, 4 * kExtent);
}

TEST(ExtentAllocatorTest, FreeCoalescesAndDetectsDoubleFree) {
  ExtentAllocator a(kExtent);
  a.AddBackend("lun0", 6 * kExtent);
  auto x = a.Allocate(2 * kExtent);
  auto y = a.Allocate(2 * kExtent);
  auto z = a.Allocate(2 * kExtent);
  std::string error;
  ASSERT_TRUE(a.Free(*x, &error));
  ASSERT_TRUE(a.Free(*z, &error));
  EXPECT_FALSE(a.Free(*x, &error));
  EXPECT_NE(error.find("already free"), std::string::npos);
  ASSERT_TRUE(a.Free(*y, &error));
  auto all = a.Allocate(6 * kExtent);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 1u);  // coalesced back into one range
}

TEST(ExtentAllocatorTest, RandomWorkloadNeverHandsOutAnExtentTwice) {
  ExtentAllocator a(kExtent);
  a.AddBackend("lun0", 64 * kExtent);
  a.AddBackend("lun1", 32 * kExtent);
  std::mt19937 rng(42);
  std::map<std::pair<std::string, uint64_t>, int> owner;  // extent index -> volume
  std::map<int, std::vector<Extent>> volumes;
  int next = 0;
  for (int step = 0; step < 2000; ++step) {
    if (volumes.empty() || rng() % 3 != 0) {
      const uint64_t size = (1 + rng() % 8) * kExtent - rng() % 1000;
      auto got = a.Allocate(size);
      if (!got) continue;
      uint64_t total = 0;
      for (const Extent& e : *got) {
        total += e.length;
        for (uint64_t off = e.offset; off < e.offset + e.length; off += kExtent) {
          ASSERT_TRUE(owner.emplace(std::make_pair(e.backend, off), next).second)
              << "extent handed out twice: " << e.backend << "@" << off;
        }
      }
      EXPECT_GE(total, size);
      volumes[next++] = *got;
    } else {
      auto it = volumes.begin();
      std::advance(it, rng() % volumes.size());
      std::string error;
      ASSERT_TRUE(a.Free(it->second, &error)) << error;
      for (const Extent& e : it->second) {
        for (uint64_t off = e.offset; off < e.offset + e.length; off += kExtent) {
          owner.erase({e.backend, off});
        }
      }
      volumes.erase(it);
    }
    ASSERT_EQ(a.FreeBytes() + owner.size() * kExtent, a.TotalBytes());
  }
}

}  // namespace
}  // namespace vios::pool
