// Structured logging: one JSON object per line on stderr (DESIGN.md §9).
//
//   VIOS_LOG(kInfo, "session logged in").Field("initiator", iqn).Field("tsih", tsih);
//
// A log line is written when the temporary returned by VIOS_LOG is destroyed. Thread-safe.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace vios::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// SetLevel sets the minimum level written; lines below it cost one comparison.
void SetLevel(Level level);
Level CurrentLevel();
// ParseLevel accepts "debug", "info", "warning"/"warn", "error"; false for anything else.
bool ParseLevel(std::string_view text, Level* level);
// SetComponent names the process in every line ("vios-agent", "vios-operator", ...).
void SetComponent(std::string_view component);

// Line accumulates fields of one log line and writes it on destruction.
class Line {
 public:
  Line(Level level, std::string_view message, const char* file, int line);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& Field(std::string_view key, std::string_view value);
  Line& Field(std::string_view key, const char* value) {
    return Field(key, std::string_view(value));
  }
  Line& Field(std::string_view key, const std::string& value) {
    return Field(key, std::string_view(value));
  }
  Line& Field(std::string_view key, int64_t value);
  Line& Field(std::string_view key, uint64_t value);
  Line& Field(std::string_view key, int value) { return Field(key, static_cast<int64_t>(value)); }
  Line& Field(std::string_view key, unsigned value) {
    return Field(key, static_cast<uint64_t>(value));
  }
  Line& Field(std::string_view key, long long value) {
    return Field(key, static_cast<int64_t>(value));
  }
  Line& Field(std::string_view key, unsigned long long value) {
    return Field(key, static_cast<uint64_t>(value));
  }
  Line& Field(std::string_view key, double value);
  Line& Field(std::string_view key, bool value);

 private:
  bool enabled_;
  std::string text_;
};

// AppendJsonString appends value as a quoted, escaped JSON string.
void AppendJsonString(std::string* out, std::string_view value);

}  // namespace vios::log

#define VIOS_LOG(level, message) \
  ::vios::log::Line(::vios::log::Level::level, (message), __FILE__, __LINE__)
