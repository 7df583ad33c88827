// Mapping of API server failures (metav1.Status, HTTP codes) to kube::ApiError.
#include "common/kube/errors.h"

#include <charconv>

namespace vios::kube {
namespace {

std::string Describe(std::string_view verb, std::string_view path, std::string_view reason,
                     std::string_view message, const std::vector<StatusCause>& causes) {
  std::string text = std::string(verb) + " " + std::string(path) + ": " + std::string(reason);
  if (!message.empty()) {
    text += ": " + std::string(message);
  }
  for (const StatusCause& c : causes) {
    std::string cause = (c.field.empty() ? std::string("(no field)") : c.field) + ": " + c.message;
    if (message.find(cause) == std::string_view::npos) text += "; " + cause;  // not said yet
  }
  return text;
}

// KindFromStatus prefers the Status reason, which is more precise than the code (409 is both
// AlreadyExists and Conflict), and falls back to the code.
ErrorKind KindFromStatus(int code, std::string_view reason) {
  if (reason == "NotFound") return ErrorKind::kNotFound;
  if (reason == "AlreadyExists") return ErrorKind::kAlreadyExists;
  if (reason == "Conflict") return ErrorKind::kConflict;
  if (reason == "Invalid") return ErrorKind::kInvalid;
  if (reason == "BadRequest") return ErrorKind::kBadRequest;
  if (reason == "Unauthorized") return ErrorKind::kUnauthorized;
  if (reason == "Forbidden") return ErrorKind::kForbidden;
  if (reason == "MethodNotAllowed") return ErrorKind::kMethodNotAllowed;
  if (reason == "Expired" || reason == "Gone") return ErrorKind::kExpired;
  if (reason == "TooManyRequests") return ErrorKind::kTooManyRequests;
  if (reason == "Timeout" || reason == "ServerTimeout") return ErrorKind::kTimeout;
  if (reason == "InternalError" || reason == "ServiceUnavailable") return ErrorKind::kServerError;
  switch (code) {
    case 400:
      return ErrorKind::kBadRequest;
    case 401:
      return ErrorKind::kUnauthorized;
    case 403:
      return ErrorKind::kForbidden;
    case 404:
      return ErrorKind::kNotFound;
    case 405:
      return ErrorKind::kMethodNotAllowed;
    case 409:
      return ErrorKind::kConflict;
    case 410:
      return ErrorKind::kExpired;
    case 422:
      return ErrorKind::kInvalid;
    case 429:
      return ErrorKind::kTooManyRequests;
    case 504:
      return ErrorKind::kTimeout;
    default:
      break;
  }
  if (code >= 500 && code <= 599) return ErrorKind::kServerError;
  return ErrorKind::kOther;
}

std::optional<std::chrono::seconds> ParseSeconds(std::string_view text) {
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return std::chrono::seconds(value);
}

std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNotFound:
      return "NotFound";
    case ErrorKind::kAlreadyExists:
      return "AlreadyExists";
    case ErrorKind::kConflict:
      return "Conflict";
    case ErrorKind::kInvalid:
      return "Invalid";
    case ErrorKind::kBadRequest:
      return "BadRequest";
    case ErrorKind::kUnauthorized:
      return "Unauthorized";
    case ErrorKind::kForbidden:
      return "Forbidden";
    case ErrorKind::kMethodNotAllowed:
      return "MethodNotAllowed";
    case ErrorKind::kExpired:
      return "Expired";
    case ErrorKind::kTooManyRequests:
      return "TooManyRequests";
    case ErrorKind::kTimeout:
      return "Timeout";
    case ErrorKind::kServerError:
      return "ServerError";
    case ErrorKind::kUnreachable:
      return "Unreachable";
    case ErrorKind::kTls:
      return "TLS";
    case ErrorKind::kGarbageResponse:
      return "GarbageResponse";
    case ErrorKind::kOther:
      return "Other";
  }
  return "Unknown";
}

ApiError::ApiError(ErrorKind kind, std::string verb, std::string path, int code, std::string reason,
                   std::string message, std::vector<StatusCause> causes,
                   std::optional<std::chrono::seconds> retry_after)
    : Error(Describe(verb, path, reason.empty() ? ErrorKindName(kind) : reason, message, causes)),
      kind_(kind),
      verb_(std::move(verb)),
      path_(std::move(path)),
      code_(code),
      reason_(reason.empty() ? std::string(ErrorKindName(kind)) : std::move(reason)),
      message_(std::move(message)),
      causes_(std::move(causes)),
      retry_after_(retry_after) {}

ApiError ErrorFromStatus(std::string_view verb, std::string_view path,
                         const nlohmann::json& status) {
  int code = 0;
  if (auto it = status.find("code"); it != status.end() && it->is_number_integer()) {
    code = it->get<int>();
  }
  std::string reason = StringField(status, "reason");
  std::vector<StatusCause> causes;
  std::optional<std::chrono::seconds> retry_after;
  if (auto details = status.find("details"); details != status.end() && details->is_object()) {
    if (auto list = details->find("causes"); list != details->end() && list->is_array()) {
      for (const auto& c : *list) {
        if (!c.is_object()) continue;
        causes.push_back(
            {StringField(c, "reason"), StringField(c, "field"), StringField(c, "message")});
      }
    }
    if (auto ra = details->find("retryAfterSeconds");
        ra != details->end() && ra->is_number_integer() && ra->get<int64_t>() >= 0) {
      retry_after = std::chrono::seconds(ra->get<int64_t>());
    }
  }
  ErrorKind kind = KindFromStatus(code, reason);
  return ApiError(kind, std::string(verb), std::string(path), code, reason,
                  StringField(status, "message"), std::move(causes), retry_after);
}

ApiError ErrorFromResponse(std::string_view verb, std::string_view path, int http_status,
                           std::string_view body, std::string_view retry_after_header) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::optional<std::chrono::seconds> header_retry = ParseSeconds(retry_after_header);
  if (parsed.is_object() && StringField(parsed, "kind") == "Status") {
    if (!parsed.contains("code")) parsed["code"] = http_status;
    ApiError e = ErrorFromStatus(verb, path, parsed);
    if (e.retry_after() || !header_retry) return e;
    return ApiError(e.kind(), e.verb(), e.path(), e.code(), e.reason(), e.message(), e.causes(),
                    header_retry);
  }
  // Not a Status: classify by code and quote the start of the body so the log shows what came.
  std::string snippet(body.substr(0, 200));
  std::string message = "HTTP " + std::to_string(http_status);
  if (!snippet.empty()) message += ", body: " + snippet;
  return ApiError(KindFromStatus(http_status, ""), std::string(verb), std::string(path),
                  http_status, "", message, {}, header_retry);
}

bool IsRetryable(const ApiError& e) {
  switch (e.kind()) {
    case ErrorKind::kTooManyRequests:
    case ErrorKind::kTimeout:
    case ErrorKind::kServerError:
    case ErrorKind::kUnreachable:
      return true;
    default:
      return false;
  }
}

namespace {
bool HasKind(const std::exception& e, ErrorKind kind) {
  const auto* api = dynamic_cast<const ApiError*>(&e);
  return api != nullptr && api->kind() == kind;
}
}  // namespace

bool IsNotFound(const std::exception& e) { return HasKind(e, ErrorKind::kNotFound); }
bool IsAlreadyExists(const std::exception& e) { return HasKind(e, ErrorKind::kAlreadyExists); }
bool IsConflict(const std::exception& e) { return HasKind(e, ErrorKind::kConflict); }
bool IsExpired(const std::exception& e) { return HasKind(e, ErrorKind::kExpired); }

}  // namespace vios::kube
