// Options: command line of vios-loadgen.
//
//   vios-loadgen --rw randwrite --bs 4k --qd 32 --duration 10 --verify --json
//       iscsi://127.0.0.1:3260/iqn.2026-11.dev.vios:vol0/1
//
// CHAP credentials come from flags or, so they stay out of `ps`, from the environment
// (VIOS_CHAP_USER, VIOS_CHAP_PASSWORD, VIOS_CHAP_TARGET_USER, VIOS_CHAP_TARGET_PASSWORD).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vios::bench {

enum class Pattern { kRead, kWrite, kRandRead, kRandWrite, kRandRw };

struct Options {
  std::string url;  // iscsi://host:port/iqn/lun
  std::string initiator_name = "iqn.2026-11.dev.vios:loadgen";
  std::string chap_user;
  std::string chap_password;
  std::string target_user;  // Mutual CHAP.
  std::string target_password;
  Pattern pattern = Pattern::kRandRead;
  uint32_t read_percent = 50;  // kRandRw only.
  uint64_t block_bytes = 4096;
  uint32_t queue_depth = 32;
  double duration_seconds = 0;  // 0 with ios == 0 -> 10 s.
  uint64_t ios = 0;             // Stop after this many I/Os (0: no limit).
  uint64_t offset_bytes = 0;    // Region start.
  uint64_t size_limit = 0;      // Region length (0: to the end of the LUN).
  bool verify = false;
  uint64_t seed = 0;  // 0: from the clock.
  double stall_timeout_seconds = 30;
  bool json = false;
  bool quiet = false;
};

// ParseOptions parses argv (without argv[0]); on failure it returns nullopt and sets *error.
// "--help" returns nullopt with *error empty.
std::optional<Options> ParseOptions(const std::vector<std::string>& args, std::string* error);

// ParseSize reads "4096", "4k", "128K", "1m", "2g" (binary multiples).
bool ParseSize(const std::string& text, uint64_t* bytes);

const char* PatternName(Pattern pattern);
bool PatternReads(Pattern pattern);
bool PatternWrites(Pattern pattern);
bool PatternRandom(Pattern pattern);

// Usage is the --help text.
std::string Usage();

}  // namespace vios::bench
