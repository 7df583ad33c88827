// Options: parsing vios-loadgen's command line (see options.h).
#include "bench/loadgen/options.h"

#include <cstdlib>
#include <functional>
#include <map>

namespace vios::bench {
namespace {

bool ParseUnsigned(const std::string& text, uint64_t* value) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
      text.size() > 19) {
    return false;
  }
  *value = std::stoull(text);
  return true;
}

bool ParseSeconds(const std::string& text, double* value) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v >= 0) || v > 1e7) {
    return false;
  }
  *value = v;
  return true;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

bool ParseSize(const std::string& text, uint64_t* bytes) {
  if (text.empty()) {
    return false;
  }
  uint64_t mult = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'k':
    case 'K':
      mult = uint64_t{1} << 10;
      break;
    case 'm':
    case 'M':
      mult = uint64_t{1} << 20;
      break;
    case 'g':
    case 'G':
      mult = uint64_t{1} << 30;
      break;
    case 't':
    case 'T':
      mult = uint64_t{1} << 40;
      break;
    default:
      break;
  }
  if (mult != 1) {
    digits.pop_back();
  }
  uint64_t v = 0;
  if (!ParseUnsigned(digits, &v) || v > UINT64_MAX / mult) {
    return false;
  }
  *bytes = v * mult;
  return true;
}

const char* PatternName(Pattern pattern) {
  switch (pattern) {
    case Pattern::kRead:
      return "read";
    case Pattern::kWrite:
      return "write";
    case Pattern::kRandRead:
      return "randread";
    case Pattern::kRandWrite:
      return "randwrite";
    case Pattern::kRandRw:
      return "randrw";
  }
  return "?";
}

bool PatternReads(Pattern p) {
  return p == Pattern::kRead || p == Pattern::kRandRead || p == Pattern::kRandRw;
}
bool PatternWrites(Pattern p) {
  return p == Pattern::kWrite || p == Pattern::kRandWrite || p == Pattern::kRandRw;
}
bool PatternRandom(Pattern p) { return p != Pattern::kRead && p != Pattern::kWrite; }

std::string Usage() {
  return R"(usage: vios-loadgen [options] iscsi://HOST:PORT/TARGET-IQN/LUN

  --initiator-name IQN   initiator name (default iqn.2026-11.dev.vios:loadgen)
  --chap-user U          CHAP user (or env VIOS_CHAP_USER)
  --chap-password P      CHAP secret (or env VIOS_CHAP_PASSWORD)
  --target-user U        mutual CHAP: target's name (or env VIOS_CHAP_TARGET_USER)
  --target-password P    mutual CHAP: target's secret (or env VIOS_CHAP_TARGET_PASSWORD)
  --rw MODE              read | write | randread | randwrite | randrw (default randread)
  --rwmixread PCT        read share for randrw (default 50)
  --bs SIZE              I/O size, multiple of the LUN block size (default 4k)
  --qd N                 queue depth (default 32)
  --duration SECONDS     run time (default 10 unless --ios is given)
  --ios N                stop after N I/Os
  --offset SIZE          start of the region (default 0)
  --size-limit SIZE      length of the region (default: to the end of the LUN)
  --verify               stamp every written block (LBA, generation, checksum), check every
                         block read; after a run with writes, read back everything written
  --seed N               random seed (default: from the clock)
  --timeout SECONDS      fail if no I/O completes for this long (default 30)
  --json                 print the result as one JSON object
  --quiet                no progress or failure details on stderr

Exit status: 0 on success, 1 on I/O errors or verification failures, 2 on usage or connection
errors.
)";
}

std::optional<Options> ParseOptions(const std::vector<std::string>& args, std::string* error) {
  Options o;
  o.chap_user = Env("VIOS_CHAP_USER");
  o.chap_password = Env("VIOS_CHAP_PASSWORD");
  o.target_user = Env("VIOS_CHAP_TARGET_USER");
  o.target_password = Env("VIOS_CHAP_TARGET_PASSWORD");
  error->clear();

  auto size_flag = [error](uint64_t* out) {
    return [out, error](const std::string& v) {
      if (!ParseSize(v, out)) {
        *error = "bad size '" + v + "'";
        return false;
      }
      return true;
    };
  };
  auto string_flag = [](std::string* out) {
    return [out](const std::string& v) {
      *out = v;
      return true;
    };
  };
  uint64_t qd = o.queue_depth;
  uint64_t mix = o.read_percent;
  std::map<std::string, std::function<bool(const std::string&)>> flags = {
      {"--initiator-name", string_flag(&o.initiator_name)},
      {"--chap-user", string_flag(&o.chap_user)},
      {"--chap-password", string_flag(&o.chap_password)},
      {"--target-user", string_flag(&o.target_user)},
      {"--target-password", string_flag(&o.target_password)},
      {"--bs", size_flag(&o.block_bytes)},
      {"--offset", size_flag(&o.offset_bytes)},
      {"--size-limit", size_flag(&o.size_limit)},
      {"--rw",
       [&o, error](const std::string& v) {
         static const std::map<std::string, Pattern> kPatterns = {
             {"read", Pattern::kRead},
             {"write", Pattern::kWrite},
             {"randread", Pattern::kRandRead},
             {"randwrite", Pattern::kRandWrite},
             {"randrw", Pattern::kRandRw}};
         auto it = kPatterns.find(v);
         if (it == kPatterns.end()) {
           *error = "unknown --rw '" + v + "'";
           return false;
         }
         o.pattern = it->second;
         return true;
       }},
      {"--qd", [&qd](const std::string& v) { return ParseUnsigned(v, &qd); }},
      {"--rwmixread", [&mix](const std::string& v) { return ParseUnsigned(v, &mix); }},
      {"--ios", [&o](const std::string& v) { return ParseUnsigned(v, &o.ios); }},
      {"--seed", [&o](const std::string& v) { return ParseUnsigned(v, &o.seed); }},
      {"--duration", [&o](const std::string& v) { return ParseSeconds(v, &o.duration_seconds); }},
      {"--timeout",
       [&o](const std::string& v) { return ParseSeconds(v, &o.stall_timeout_seconds); }},
  };

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      return std::nullopt;
    }
    if (a == "--verify") {
      o.verify = true;
      continue;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    std::string name = a;
    std::string value;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto it = flags.find(name);
    if (it != flags.end()) {
      if (!has_value) {
        if (i + 1 >= args.size()) {
          *error = name + " needs a value";
          return std::nullopt;
        }
        value = args[++i];
      }
      if (!it->second(value)) {
        if (error->empty()) {
          *error = "bad value '" + value + "' for " + name;
        }
        return std::nullopt;
      }
      continue;
    }
    if (a.rfind("-", 0) == 0) {
      *error = "unknown option " + a;
      return std::nullopt;
    }
    if (!o.url.empty()) {
      *error = "more than one target URL";
      return std::nullopt;
    }
    o.url = a;
  }

  if (o.url.rfind("iscsi://", 0) != 0) {
    *error = o.url.empty() ? "missing target URL" : "target URL must start with iscsi://";
    return std::nullopt;
  }
  if (qd == 0 || qd > 1024) {
    *error = "--qd must be 1..1024";
    return std::nullopt;
  }
  if (mix > 100) {
    *error = "--rwmixread must be 0..100";
    return std::nullopt;
  }
  if (o.block_bytes == 0 || o.block_bytes > (uint64_t{16} << 20) || o.block_bytes % 512 != 0) {
    *error = "--bs must be a multiple of 512 up to 16m";
    return std::nullopt;
  }
  if (o.chap_password.empty() != o.chap_user.empty()) {
    *error = "CHAP needs both a user and a password";
    return std::nullopt;
  }
  if (!o.target_user.empty() && o.chap_user.empty()) {
    *error = "mutual CHAP needs one-way CHAP credentials too";
    return std::nullopt;
  }
  o.queue_depth = static_cast<uint32_t>(qd);
  o.read_percent = static_cast<uint32_t>(mix);
  if (o.duration_seconds == 0 && o.ios == 0) {
    o.duration_seconds = 10;
  }
  return o;
}

}  // namespace vios::bench
