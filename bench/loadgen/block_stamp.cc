// BlockStamp: writing and checking the verify-mode block format (see block_stamp.h).
#include "bench/loadgen/block_stamp.h"

#include <cstring>

namespace vios::bench {
namespace {

constexpr uint8_t kMagic[8] = {'V', 'I', 'O', 'S', 'L', 'G', '0', '1'};
constexpr size_t kChecksumOffset = 32;

uint64_t Load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

void Store64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

uint64_t Mix(uint64_t h, uint64_t w) {
  h ^= w;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

// Checksum covers every 8-byte word of the block, the checksum word counted as zero; it is
// position-dependent, so swapped words are caught too.
uint64_t Checksum(std::span<const uint8_t> block) {
  uint64_t h = 0xC0FFEE0DDF00Dull ^ block.size();
  for (size_t off = 0; off + 8 <= block.size(); off += 8) {
    uint64_t w = off == kChecksumOffset ? 0 : Load64(block.data() + off);
    h = Mix(h, w + off);
  }
  return h;
}

}  // namespace

const char* StampStatusName(StampStatus status) {
  switch (status) {
    case StampStatus::kOk:
      return "ok";
    case StampStatus::kUnwritten:
      return "unwritten";
    case StampStatus::kBadMagic:
      return "bad_magic";
    case StampStatus::kWrongLba:
      return "wrong_lba";
    case StampStatus::kBadChecksum:
      return "bad_checksum";
    case StampStatus::kWrongGeneration:
      return "wrong_generation";
  }
  return "unknown";
}

void StampBlock(std::span<uint8_t> block, uint64_t lba, uint64_t generation, uint64_t run_id) {
  uint8_t* p = block.data();
  std::memcpy(p, kMagic, sizeof(kMagic));
  Store64(p + 8, lba);
  Store64(p + 16, generation);
  Store64(p + 24, run_id);
  Store64(p + kChecksumOffset, 0);
  // Payload: a xorshift stream seeded by (lba, generation), so stale data differs from new data.
  uint64_t x = (lba * 0xD1B54A32D192ED03ull) ^ (generation + 0x632BE59BD9B4E019ull);
  if (x == 0) {
    x = 1;
  }
  for (size_t off = kStampHeaderBytes; off + 8 <= block.size(); off += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Store64(p + off, x);
  }
  Store64(p + kChecksumOffset, Checksum(block));
}

StampStatus CheckBlock(std::span<const uint8_t> block, uint64_t lba, uint64_t expected_generation,
                       uint64_t* found_generation) {
  const uint8_t* p = block.data();
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    for (uint8_t b : block) {
      if (b != 0) {
        return StampStatus::kBadMagic;
      }
    }
    return StampStatus::kUnwritten;
  }
  uint64_t generation = Load64(p + 16);
  if (found_generation != nullptr) {
    *found_generation = generation;
  }
  if (Checksum(block) != Load64(p + kChecksumOffset)) {
    return StampStatus::kBadChecksum;
  }
  if (Load64(p + 8) != lba) {
    return StampStatus::kWrongLba;
  }
  if (expected_generation != 0 && generation != expected_generation) {
    return StampStatus::kWrongGeneration;
  }
  return StampStatus::kOk;
}

}  // namespace vios::bench
