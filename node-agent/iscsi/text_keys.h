// iSCSI text key=value lists (RFC 7143 §6): parsing with limits and serialization. Used by Login
// and Text PDUs. Everything here treats its input as hostile: malformed lists yield an error,
// never an exception or a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vios::iscsi {

// Limits from RFC 7143 §6.1: key names up to 63 bytes; values up to 255 bytes, except the binary
// CHAP values which may be longer. The total keeps a login that never ends from eating memory.
constexpr size_t kMaxKeyLength = 63;
constexpr size_t kMaxValueLength = 255;
constexpr size_t kMaxLongValueLength = 8192;
constexpr size_t kMaxTextLength = 65536;

using KeyValue = std::pair<std::string, std::string>;

// TextKeys is an ordered key=value list.
class TextKeys {
 public:
  // Parse reads "key=value\0key=value\0..." into this list. Returns false and sets *error on
  // malformed input: missing '=', empty or oversize key, bad key characters, oversize value,
  // a missing final NUL, or a key given twice.
  bool Parse(std::span<const uint8_t> data, std::string* error);

  void Add(std::string key, std::string value) {
    pairs_.emplace_back(std::move(key), std::move(value));
  }
  // Find returns the value of key, or nullptr.
  const std::string* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }

  const std::vector<KeyValue>& pairs() const { return pairs_; }
  bool empty() const { return pairs_.empty(); }
  void Clear() { pairs_.clear(); }

  // Serialize appends "key=value\0" for every pair.
  void Serialize(std::vector<uint8_t>* out) const;

 private:
  std::vector<KeyValue> pairs_;
};

// ParseNumber reads a decimal or 0x-hexadecimal number (RFC 7143 §6.1 numerical values).
std::optional<uint64_t> ParseNumber(std::string_view text);

// SplitList splits a comma-separated list value.
std::vector<std::string_view> SplitList(std::string_view value);

// Binary values (CHAP_C, CHAP_R): "0x" hex or "0b" base64 (RFC 7143 §6.1). Empty on error.
std::optional<std::vector<uint8_t>> DecodeBinary(std::string_view text);
std::string EncodeHex(std::span<const uint8_t> data);

}  // namespace vios::iscsi
