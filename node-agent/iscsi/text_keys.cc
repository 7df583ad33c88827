// Parsing and formatting of iSCSI text key=value lists (RFC 7143 §6.1).
#include "node-agent/iscsi/text_keys.h"

#include <cctype>

namespace vios::iscsi {
namespace {

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '+' ||
         c == '@' || c == '_';
}

bool IsLongValueKey(std::string_view key) {
  return key == "CHAP_C" || key == "CHAP_R" || key == "CHAP_N";
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool TextKeys::Parse(std::span<const uint8_t> data, std::string* error) {
  if (data.size() > kMaxTextLength) {
    *error = "text too long";
    return false;
  }
  if (data.empty()) return true;
  if (data.back() != 0) {
    *error = "text does not end with NUL";
    return false;
  }
  size_t start = 0;
  while (start < data.size()) {
    size_t end = start;
    while (data[end] != 0) ++end;  // Terminates: the last byte is NUL.
    std::string_view pair(reinterpret_cast<const char*>(data.data()) + start, end - start);
    start = end + 1;
    if (pair.empty()) {
      // Some initiators pad with extra NULs; tolerate them.
      continue;
    }
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      *error = "key without '='";
      return false;
    }
    std::string_view key = pair.substr(0, eq);
    std::string_view value = pair.substr(eq + 1);
    if (key.empty() || key.size() > kMaxKeyLength) {
      *error = "bad key length";
      return false;
    }
    for (char c : key) {
      if (!IsKeyChar(c)) {
        *error = "bad character in key";
        return false;
      }
    }
    size_t limit = IsLongValueKey(key) ? kMaxLongValueLength : kMaxValueLength;
    if (value.size() > limit) {
      *error = "value too long for " + std::string(key);
      return false;
    }
    if (Has(key)) {
      *error = "key repeated: " + std::string(key);
      return false;
    }
    pairs_.emplace_back(std::string(key), std::string(value));
  }
  return true;
}

const std::string* TextKeys::Find(std::string_view key) const {
  for (const auto& [k, v] : pairs_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void TextKeys::Serialize(std::vector<uint8_t>* out) const {
  for (const auto& [k, v] : pairs_) {
    out->insert(out->end(), k.begin(), k.end());
    out->push_back('=');
    out->insert(out->end(), v.begin(), v.end());
    out->push_back(0);
  }
}

std::optional<uint64_t> ParseNumber(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    if (text.size() > 18) return std::nullopt;
    for (char c : text.substr(2)) {
      int d = HexDigit(c);
      if (d < 0) return std::nullopt;
      value = value * 16 + static_cast<uint64_t>(d);
    }
    return value;
  }
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t next = value * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != value) return std::nullopt;  // Overflow.
    value = next;
  }
  return value;
}

std::vector<std::string_view> SplitList(std::string_view value) {
  std::vector<std::string_view> items;
  size_t start = 0;
  while (true) {
    size_t comma = value.find(',', start);
    items.push_back(value.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

std::optional<std::vector<uint8_t>> DecodeBinary(std::string_view text) {
  if (text.size() < 3 || text[0] != '0') return std::nullopt;
  std::string_view body = text.substr(2);
  std::vector<uint8_t> out;
  if (text[1] == 'x' || text[1] == 'X') {
    // An odd number of digits means a leading zero nibble.
    size_t i = 0;
    if (body.size() % 2 == 1) {
      int d = HexDigit(body[0]);
      if (d < 0) return std::nullopt;
      out.push_back(static_cast<uint8_t>(d));
      i = 1;
    }
    for (; i < body.size(); i += 2) {
      int hi = HexDigit(body[i]);
      int lo = HexDigit(body[i + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
    return out;
  }
  if (text[1] == 'b' || text[1] == 'B') {
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;
    for (char c : body) {
      if (c == '=') {
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // Data after padding.
      int d = Base64Digit(c);
      if (d < 0) return std::nullopt;
      acc = (acc << 6) | static_cast<uint32_t>(d);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<uint8_t>(acc >> bits));
      }
    }
    if (pad > 2) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::string EncodeHex(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

}  // namespace vios::iscsi
