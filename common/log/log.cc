#include "common/log/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace vios::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_component_mu;
std::string g_component = "vios";  // Guarded by g_component_mu.

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendTimestamp(std::string* out) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  out->append(buf);
}

}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level CurrentLevel() { return static_cast<Level>(g_level.load()); }

bool ParseLevel(std::string_view text, Level* level) {
  if (text == "debug") {
    *level = Level::kDebug;
  } else if (text == "info") {
    *level = Level::kInfo;
  } else if (text == "warning" || text == "warn") {
    *level = Level::kWarning;
  } else if (text == "error") {
    *level = Level::kError;
  } else {
    return false;
  }
  return true;
}

void SetComponent(std::string_view component) {
  std::lock_guard lock(g_component_mu);
  g_component = component;
}

void AppendJsonString(std::string* out, std::string_view value) {
  out->push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

Line::Line(Level level, std::string_view message, const char* file, int line)
    : enabled_(static_cast<int>(level) >= g_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  text_.reserve(256);
  text_.append("{\"ts\":\"");
  AppendTimestamp(&text_);
  text_.append("\",\"level\":\"");
  text_.append(LevelName(level));
  text_.append("\",\"component\":");
  {
    std::lock_guard lock(g_component_mu);
    AppendJsonString(&text_, g_component);
  }
  text_.append(",\"msg\":");
  AppendJsonString(&text_, message);
  std::string_view path(file);
  if (auto slash = path.rfind('/'); slash != std::string_view::npos) path.remove_prefix(slash + 1);
  text_.append(",\"src\":");
  AppendJsonString(&text_, std::string(path) + ":" + std::to_string(line));
}

Line::~Line() {
  if (!enabled_) return;
  text_.append("}\n");
  // One write(2) per line keeps lines from different threads whole.
  size_t off = 0;
  while (off < text_.size()) {
    ssize_t n = ::write(STDERR_FILENO, text_.data() + off, text_.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

Line& Line::Field(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  text_.push_back(',');
  AppendJsonString(&text_, key);
  text_.push_back(':');
  AppendJsonString(&text_, value);
  return *this;
}

Line& Line::Field(std::string_view key, int64_t value) {
  if (!enabled_) return *this;
  text_.push_back(',');
  AppendJsonString(&text_, key);
  text_.push_back(':');
  text_.append(std::to_string(value));
  return *this;
}

Line& Line::Field(std::string_view key, uint64_t value) {
  if (!enabled_) return *this;
  text_.push_back(',');
  AppendJsonString(&text_, key);
  text_.push_back(':');
  text_.append(std::to_string(value));
  return *this;
}

Line& Line::Field(std::string_view key, double value) {
  if (!enabled_) return *this;
  text_.push_back(',');
  AppendJsonString(&text_, key);
  char buf[32];
  std::snprintf(buf, sizeof(buf), ":%.6g", value);
  text_.append(buf);
  return *this;
}

Line& Line::Field(std::string_view key, bool value) {
  if (!enabled_) return *this;
  text_.push_back(',');
  AppendJsonString(&text_, key);
  text_.append(value ? ":true" : ":false");
  return *this;
}

}  // namespace vios::log
