// Streaming watch: one long GET with ?watch=1 whose chunked body carries one JSON event per line.
//
//   kube::Watcher watcher(client, kube::resources::kConfigMaps, "default",
//                         {.resource_version = list.resource_version});
//   std::thread t([&] { watcher.Run([](const kube::WatchEvent& e) { ... }); });
//   ...
//   watcher.Stop();  // from any thread; Run returns promptly
//
// A 410 Gone, whether the HTTP status or an ERROR event with code 410, throws an ApiError of kind
// kExpired: the resourceVersion is no longer in the server's history and the caller must re-list.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "common/kube/transport.h"

namespace vios::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

std::string_view WatchEventTypeName(WatchEventType type);

// WatchEvent is one line of a watch stream (metav1.WatchEvent).
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  nlohmann::json object;  // the object, or a metav1.Status for kError
};

// WatchLineParser turns arbitrary chunks of a watch body into events. It buffers a partial
// line until its newline arrives, so chunk boundaries anywhere (even inside a UTF-8 sequence)
// are fine. A line that is not a watch event throws ApiError kGarbageResponse.
class WatchLineParser {
 public:
  // max_line bounds the buffered partial line; a longer one is garbage.
  explicit WatchLineParser(size_t max_line = 64u << 20) : max_line_(max_line) {}

  // Feed consumes a chunk and returns the events whose lines it completed.
  std::vector<WatchEvent> Feed(std::string_view chunk);
  // Pending is the number of buffered bytes of an incomplete line.
  size_t Pending() const { return buffer_.size(); }

  // ParseLine parses one complete line.
  static WatchEvent ParseLine(std::string_view line);

 private:
  size_t max_line_;
  std::string buffer_;
};

struct WatchOptions {
  std::string resource_version;  // start after this version ("" = from now, with synthetic ADDs)
  std::string label_selector;
  std::string field_selector;
  bool allow_bookmarks = true;
  int64_t timeout_seconds = 300;  // the server ends the watch after this; Run then returns
};

// Watcher runs one watch request. Not restartable: make a new one to watch again.
class Watcher {
 public:
  Watcher(Client& client, ResourceRef ref, std::string ns, WatchOptions options);

  // Run delivers events until the server closes the stream (returns normally) or Stop() is
  // called. Throws ApiError: kExpired on 410, the mapped error of a non-2xx answer or an ERROR
  // event, kUnreachable when the connection breaks, kGarbageResponse for an unparsable line.
  void Run(const std::function<void(const WatchEvent&)>& on_event);

  // Stop ends Run from any thread.
  void Stop() { cancel_.Cancel(); }
  bool stopped() const { return cancel_.cancelled(); }

  // last_resource_version is the newest resourceVersion seen (objects and bookmarks): resume a
  // broken watch from here.
  const std::string& last_resource_version() const { return last_rv_; }

  // Path returns the request path with its query.
  std::string Path() const;

 private:
  Client& client_;
  ResourceRef ref_;
  std::string ns_;
  WatchOptions options_;
  StreamCancel cancel_;
  std::string last_rv_;
};

}  // namespace vios::kube
