// Watch stream parsing and the streaming request.
#include "common/kube/watch.h"

namespace vios::kube {
namespace {

std::optional<WatchEventType> ParseType(std::string_view text) {
  if (text == "ADDED") return WatchEventType::kAdded;
  if (text == "MODIFIED") return WatchEventType::kModified;
  if (text == "DELETED") return WatchEventType::kDeleted;
  if (text == "BOOKMARK") return WatchEventType::kBookmark;
  if (text == "ERROR") return WatchEventType::kError;
  return std::nullopt;
}

ApiError Garbage(std::string message) {
  return ApiError(ErrorKind::kGarbageResponse, "WATCH", "", 200, "", std::move(message));
}

}  // namespace

std::string_view WatchEventTypeName(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "ADDED";
    case WatchEventType::kModified:
      return "MODIFIED";
    case WatchEventType::kDeleted:
      return "DELETED";
    case WatchEventType::kBookmark:
      return "BOOKMARK";
    case WatchEventType::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

WatchEvent WatchLineParser::ParseLine(std::string_view line) {
  nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    throw Garbage("watch line is not a JSON object: '" + std::string(line.substr(0, 80)) + "'");
  }
  auto type = parsed.find("type");
  auto object = parsed.find("object");
  if (type == parsed.end() || !type->is_string() || object == parsed.end() ||
      !object->is_object()) {
    throw Garbage("watch line lacks type or object: '" + std::string(line.substr(0, 80)) + "'");
  }
  std::optional<WatchEventType> t = ParseType(type->get<std::string>());
  if (!t) throw Garbage("unknown watch event type '" + type->get<std::string>() + "'");
  return WatchEvent{*t, std::move(*object)};
}

std::vector<WatchEvent> WatchLineParser::Feed(std::string_view chunk) {
  std::vector<WatchEvent> events;
  size_t start = 0;
  while (start < chunk.size()) {
    size_t newline = chunk.find('\n', start);
    if (newline == std::string_view::npos) {
      buffer_.append(chunk.substr(start));
      if (buffer_.size() > max_line_) {
        buffer_.clear();
        throw Garbage("watch line longer than " + std::to_string(max_line_) + " bytes");
      }
      break;
    }
    std::string_view piece = chunk.substr(start, newline - start);
    start = newline + 1;
    if (!buffer_.empty()) {
      buffer_.append(piece);
      std::string line = std::move(buffer_);
      buffer_.clear();
      if (line.find_first_not_of(" \r\t") != std::string::npos) {
        events.push_back(ParseLine(line));
      }
    } else if (piece.find_first_not_of(" \r\t") != std::string_view::npos) {
      events.push_back(ParseLine(piece));
    }
  }
  return events;
}

Watcher::Watcher(Client& client, ResourceRef ref, std::string ns, WatchOptions options)
    : client_(client),
      ref_(std::move(ref)),
      ns_(std::move(ns)),
      options_(std::move(options)),
      last_rv_(options_.resource_version) {}

std::string Watcher::Path() const {
  std::string path = ref_.Path(ns_) + "?watch=1";
  if (!options_.resource_version.empty()) {
    path += "&resourceVersion=" + UrlEncode(options_.resource_version);
  }
  if (options_.allow_bookmarks) path += "&allowWatchBookmarks=true";
  if (options_.timeout_seconds > 0) {
    path += "&timeoutSeconds=" + std::to_string(options_.timeout_seconds);
  }
  if (!options_.label_selector.empty()) {
    path += "&labelSelector=" + UrlEncode(options_.label_selector);
  }
  if (!options_.field_selector.empty()) {
    path += "&fieldSelector=" + UrlEncode(options_.field_selector);
  }
  return path;
}

void Watcher::Run(const std::function<void(const WatchEvent&)>& on_event) {
  const std::string path = Path();
  const std::string plain_path = ref_.Path(ns_);
  WatchLineParser parser;
  std::optional<ApiError> failure;
  // The server sends nothing between events; allow the whole watch window plus a margin before
  // a read counts as a dead connection.
  auto read_timeout =
      std::chrono::seconds((options_.timeout_seconds > 0 ? options_.timeout_seconds : 300) + 30);
  HttpResponse resp = client_.transport().Stream(
      path, read_timeout,
      [&](std::string_view chunk) {
        try {
          for (WatchEvent& event : parser.Feed(chunk)) {
            if (event.type == WatchEventType::kError) {
              failure = ErrorFromStatus("WATCH", plain_path, event.object);
              return false;
            }
            auto meta = event.object.find("metadata");
            if (meta != event.object.end() && meta->is_object()) {
              auto rv = meta->find("resourceVersion");
              if (rv != meta->end() && rv->is_string()) last_rv_ = rv->get<std::string>();
            }
            if (cancel_.cancelled()) return false;
            on_event(event);
          }
        } catch (const ApiError& e) {
          failure = ApiError(e.kind(), "WATCH", plain_path, e.code(), e.reason(), e.message());
          return false;
        }
        return true;
      },
      &cancel_);
  if (failure) throw *failure;
  if (cancel_.cancelled() || resp.status == 0) return;
  if (resp.status < 200 || resp.status >= 300) {
    throw ErrorFromResponse("WATCH", plain_path, resp.status, resp.body, resp.retry_after);
  }
}

}  // namespace vios::kube
