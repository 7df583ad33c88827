// BlockStamp: the self-describing content vios-loadgen writes in verify mode.
//
// Every logical block written carries a 40-byte header (magic, its own LBA, a generation stamp, a
// run id, a checksum over the whole block) followed by a payload derived from (LBA, generation).
// A reader can then tell, from the block alone, whether it is a block the load generator wrote, for
// this LBA, intact; and with the writer's record of generations, whether it is the latest write.
//
//   StampBlock(buf, lba, generation, run_id);
//   StampStatus s = CheckBlock(buf, lba, expected_generation /* 0 = any */, &found);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vios::bench {

// Header layout (little endian): magic[8] "VIOSLG01", lba u64, generation u64, run id u64,
// checksum u64 (over the block with the checksum field read as zero).
inline constexpr size_t kStampHeaderBytes = 40;
inline constexpr size_t kMinStampBlock = 64;

enum class StampStatus {
  kOk,
  kUnwritten,        // All zeroes: never written (or discarded).
  kBadMagic,         // Not a loadgen block, or the header is corrupt.
  kWrongLba,         // A loadgen block, but for another LBA (misdirected I/O).
  kBadChecksum,      // Header intact, contents corrupt.
  kWrongGeneration,  // Intact, but not the generation last written (lost or stale write).
};

const char* StampStatusName(StampStatus status);

// StampBlock fills one logical block (size >= kMinStampBlock, multiple of 8).
void StampBlock(std::span<uint8_t> block, uint64_t lba, uint64_t generation, uint64_t run_id);

// CheckBlock verifies one logical block read back from lba. expected_generation 0 accepts any
// generation. found_generation (may be null) receives the stamped generation if the header parsed.
StampStatus CheckBlock(std::span<const uint8_t> block, uint64_t lba, uint64_t expected_generation,
                       uint64_t* found_generation);

}  // namespace vios::bench
