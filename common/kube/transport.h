// HTTP(S) transport to one API server: TLS setup from a Config, a small pool of keep-alive
// connections, bearer tokens, and streaming GETs for watches. One attempt per call; retries live
// in the Client, which knows which requests are idempotent.
//
//   kube::Transport transport(config);
//   kube::HttpResponse r = transport.Do({"GET", "/api/v1/namespaces/default/configmaps", ""});
//
// Transport failures throw kube::ApiError with kind kUnreachable or kTls; HTTP error statuses
// are returned, not thrown. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/kube/config.h"

namespace vios::kube {

// HttpRequest is one API request. path includes the query string ("/api/v1/...?limit=10").
struct HttpRequest {
  std::string method;
  std::string path;
  std::string body;
  std::string content_type = "application/json";
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string retry_after;  // raw Retry-After header, "" if absent
};

// StreamCancel lets another thread end a streaming request: it sets a flag the receive loop
// checks and shuts the socket down, so a blocked read returns at once. Thread-safe.
class StreamCancel {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend class Transport;
  // Attach registers how to interrupt the active stream; runs it at once if already cancelled.
  void Attach(std::function<void()> interrupt);
  void Detach();

  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> interrupt_;
};

class Transport {
 public:
  // Transport parses the certificates in config; a bad PEM throws ConfigError.
  explicit Transport(const Config& config);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Do sends req and returns the response of any status. Throws ApiError (kUnreachable, kTls)
  // when no response arrived (see kNotSentMarker).
  HttpResponse Do(const HttpRequest& req);

  // Stream sends a GET and hands the body to on_chunk piece by piece as it arrives (2xx only;
  // the body of an error status is returned in the response). on_chunk returning false, or
  // cancel->Cancel(), ends the stream; the response then has status 0 if cancelled before any.
  HttpResponse Stream(const std::string& path, std::chrono::seconds read_timeout,
                      const std::function<bool(std::string_view)>& on_chunk, StreamCancel* cancel);

  const Config& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// kNotSentMarker appears in the message of transport errors raised before the request could
// have reached the server (connect failed); such requests are safe to repeat for any verb.
inline constexpr std::string_view kNotSentMarker = "request not sent";

}  // namespace vios::kube
