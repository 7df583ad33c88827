#include "common/util/quantity.h"

#include <array>
#include <utility>

namespace vios::util {
namespace {

constexpr std::array<std::pair<std::string_view, uint64_t>, 10> kSuffixes{{
    {"Ki", 1ull << 10},
    {"Mi", 1ull << 20},
    {"Gi", 1ull << 30},
    {"Ti", 1ull << 40},
    {"Pi", 1ull << 50},
    {"k", 1000ull},
    {"M", 1000ull * 1000},
    {"G", 1000ull * 1000 * 1000},
    {"T", 1000ull * 1000 * 1000 * 1000},
    {"P", 1000ull * 1000 * 1000 * 1000 * 1000},
}};

}  // namespace

std::optional<uint64_t> ParseByteQuantity(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  std::string_view suffix = text.substr(digits);
  if (suffix.empty()) return value;
  for (const auto& [name, multiplier] : kSuffixes) {
    if (suffix == name) {
      if (value != 0 && multiplier > UINT64_MAX / value) return std::nullopt;
      return value * multiplier;
    }
  }
  return std::nullopt;
}

std::string FormatByteQuantity(uint64_t bytes) {
  static constexpr std::array<std::string_view, 5> kBinary{"Pi", "Ti", "Gi", "Mi", "Ki"};
  for (size_t i = 0; i < kBinary.size(); ++i) {
    uint64_t unit = 1ull << (10 * (kBinary.size() - i));
    if (bytes != 0 && bytes % unit == 0)
      return std::to_string(bytes / unit) + std::string(kBinary[i]);
  }
  return std::to_string(bytes);
}

}  // namespace vios::util
