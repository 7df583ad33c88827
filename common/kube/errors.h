// Errors of the Kubernetes client: one exception hierarchy for the whole layer.
//
// Every failure of a request surfaces as a kube::ApiError whose kind() says what happened, mapped
// from the API server's metav1.Status body (reason, code, details.causes) or from the transport:
//
//   try {
//     client.Update(kVIOSVolumes, volume);
//   } catch (const kube::ApiError& e) {
//     if (e.kind() == kube::ErrorKind::kConflict) { /* re-read and retry */ }
//   }
//
// Configuration problems (a missing or garbage kubeconfig) are kube::ConfigError. Both derive
// from kube::Error, a std::runtime_error whose what() names the request and the problem.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace vios::kube {

// ErrorKind classifies a failed request; the API kinds follow metav1.StatusReason.
enum class ErrorKind {
  kNotFound,          // 404, reason NotFound
  kAlreadyExists,     // 409, reason AlreadyExists
  kConflict,          // 409, reason Conflict (stale resourceVersion)
  kInvalid,           // 422, reason Invalid; causes() names the fields
  kBadRequest,        // 400
  kUnauthorized,      // 401
  kForbidden,         // 403
  kMethodNotAllowed,  // 405
  kExpired,           // 410 Gone / reason Expired: the resourceVersion is too old; re-list
  kTooManyRequests,   // 429; retry_after() when the server said so
  kTimeout,           // 504 or reason Timeout / ServerTimeout
  kServerError,       // other 5xx
  kUnreachable,       // connection refused, DNS, reset, read timeout
  kTls,               // TLS handshake or certificate verification failed
  kGarbageResponse,   // the body is not the JSON we expected
  kOther,             // any other non-2xx status
};

// ErrorKindName returns the stable name of kind ("NotFound", "Unreachable", ...).
std::string_view ErrorKindName(ErrorKind kind);

// StatusCause is one entry of metav1.Status.details.causes: which field, and what is wrong.
struct StatusCause {
  std::string reason;  // e.g. "FieldValueRequired"
  std::string field;   // e.g. "spec.pools[0].extentSize"
  std::string message;
};

// Error is the base of everything this layer throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ConfigError: the client configuration (kubeconfig, service account) is missing or invalid.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// ApiError: a request failed. what() reads "<VERB> <path>: <problem>".
class ApiError : public Error {
 public:
  ApiError(ErrorKind kind, std::string verb, std::string path, int code, std::string reason,
           std::string message, std::vector<StatusCause> causes = {},
           std::optional<std::chrono::seconds> retry_after = std::nullopt);

  ErrorKind kind() const { return kind_; }
  // code is the HTTP status (0 for transport errors).
  int code() const { return code_; }
  // reason is metav1.Status.reason, or the ErrorKindName for errors without a Status body.
  const std::string& reason() const { return reason_; }
  // message is the server's (or transport's) description without the request prefix.
  const std::string& message() const { return message_; }
  const std::vector<StatusCause>& causes() const { return causes_; }
  std::optional<std::chrono::seconds> retry_after() const { return retry_after_; }
  const std::string& verb() const { return verb_; }
  const std::string& path() const { return path_; }

 private:
  ErrorKind kind_;
  std::string verb_;
  std::string path_;
  int code_;
  std::string reason_;
  std::string message_;
  std::vector<StatusCause> causes_;
  std::optional<std::chrono::seconds> retry_after_;
};

// ErrorFromResponse builds the error for a non-2xx response. body may be a metav1.Status, any
// other text, or empty; retry_after_header is the raw Retry-After header ("" if absent).
ApiError ErrorFromResponse(std::string_view verb, std::string_view path, int http_status,
                           std::string_view body, std::string_view retry_after_header = "");

// ErrorFromStatus maps a parsed metav1.Status object (as found in a watch ERROR event).
ApiError ErrorFromStatus(std::string_view verb, std::string_view path,
                         const nlohmann::json& status);

// IsRetryable says whether a request that failed with e may be repeated without harm when the
// request itself is idempotent (GET, LIST, WATCH): transport errors, 429, 5xx.
bool IsRetryable(const ApiError& e);

// Helpers for the common checks at call sites.
bool IsNotFound(const std::exception& e);
bool IsAlreadyExists(const std::exception& e);
bool IsConflict(const std::exception& e);
bool IsExpired(const std::exception& e);

}  // namespace vios::kube
