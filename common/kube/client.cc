// Client: URL building, JSON bodies, the retry rules, and the verbs.
#include "common/kube/client.h"

#include <random>
#include <thread>

#include "common/log/log.h"

namespace vios::kube {
namespace {

std::string MetaString(const nlohmann::json& obj, const char* key) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return "";
  auto it = meta->find(key);
  if (it == meta->end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string Verb(const HttpRequest& req) {
  // Name the verb as Kubernetes does in messages (LIST is a GET on a collection).
  return req.method;
}

void AddParam(std::string* query, const char* key, const std::string& value) {
  if (value.empty()) return;
  query->append(query->empty() ? "?" : "&");
  query->append(key).append("=").append(UrlEncode(value));
}

std::string PathOf(const std::string& path_with_query) {
  return path_with_query.substr(0, path_with_query.find('?'));
}

}  // namespace

std::string ResourceRef::ApiVersion() const {
  return group.empty() ? version : group + "/" + version;
}

std::string ResourceRef::Path(const std::string& ns, const std::string& name,
                              const std::string& subresource) const {
  std::string path = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) path += "/namespaces/" + UrlEncode(ns);
  path += "/" + resource;
  if (!name.empty()) path += "/" + UrlEncode(name);
  if (!subresource.empty()) path += "/" + subresource;
  return path;
}

std::string UrlEncode(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::chrono::milliseconds Backoff(const RetryPolicy& policy, int attempt) {
  int64_t ms = policy.initial_backoff.count();
  for (int i = 0; i < attempt && ms < policy.max_backoff.count(); ++i) ms *= 2;
  ms = std::min<int64_t>(ms, policy.max_backoff.count());
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int64_t> jitter(0, ms / 5);
  return std::chrono::milliseconds(ms - jitter(rng));
}

Client::Client(const Config& config, RetryPolicy retry)
    : transport_(std::make_unique<Transport>(config)), retry_(retry) {}

nlohmann::json Client::Request(const HttpRequest& req, bool idempotent) {
  const std::string path = PathOf(req.path);
  for (int attempt = 0;; ++attempt) {
    const bool last = attempt + 1 >= retry_.max_attempts;
    std::chrono::milliseconds delay = Backoff(retry_, attempt);
    std::optional<ApiError> failure;
    try {
      HttpResponse resp = transport_->Do(req);
      if (resp.status >= 200 && resp.status < 300) {
        if (resp.body.empty()) return nullptr;
        nlohmann::json parsed = nlohmann::json::parse(resp.body, nullptr, false);
        if (parsed.is_discarded()) {
          throw ApiError(
              ErrorKind::kGarbageResponse, Verb(req), path, resp.status, "",
              "response body is not valid JSON (starts with '" + resp.body.substr(0, 80) + "')");
        }
        return parsed;
      }
      failure = ErrorFromResponse(Verb(req), path, resp.status, resp.body, resp.retry_after);
    } catch (const ApiError& e) {
      if (e.kind() == ErrorKind::kGarbageResponse) throw;
      failure = e;
    }
    // 429 means the server refused before acting, and a connect failure means it never saw the
    // request: both are safe to repeat for any verb. Other failures only for idempotent reads.
    bool not_sent =
        failure->code() == 0 && failure->message().find(kNotSentMarker) != std::string::npos;
    bool retry = (idempotent && IsRetryable(*failure)) ||
                 failure->kind() == ErrorKind::kTooManyRequests || not_sent;
    if (!retry || last) throw *failure;
    if (failure->retry_after()) {
      delay = std::max(delay, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::min(*failure->retry_after(), std::chrono::seconds(10))));
    }
    VIOS_LOG(kWarning, "kube request failed, retrying")
        .Field("error", failure->what())
        .Field("attempt", attempt + 1)
        .Field("delay_ms", static_cast<int64_t>(delay.count()));
    std::this_thread::sleep_for(delay);
  }
}

nlohmann::json Client::Write(const std::string& method, const std::string& path,
                             const nlohmann::json& body, const std::string& content_type) {
  return Request({method, path, body.dump(), content_type}, /*idempotent=*/false);
}

nlohmann::json Client::Get(const ResourceRef& ref, const std::string& ns, const std::string& name) {
  return Request({"GET", ref.Path(ns, name), ""}, /*idempotent=*/true);
}

ListResult Client::List(const ResourceRef& ref, const std::string& ns, const ListOptions& options) {
  std::string query;
  AddParam(&query, "labelSelector", options.label_selector);
  AddParam(&query, "fieldSelector", options.field_selector);
  if (options.limit > 0) AddParam(&query, "limit", std::to_string(options.limit));
  AddParam(&query, "continue", options.continue_token);
  AddParam(&query, "resourceVersion", options.resource_version);
  std::string path = ref.Path(ns) + query;
  nlohmann::json list = Request({"GET", path, ""}, /*idempotent=*/true);
  if (!list.is_object() || !list.contains("items") ||
      !(list["items"].is_array() || list["items"].is_null())) {
    throw ApiError(ErrorKind::kGarbageResponse, "LIST", ref.Path(ns), 200, "",
                   "response is not a list (no items array)");
  }
  ListResult result;
  if (list["items"].is_array()) result.items = std::move(list["items"]);
  result.resource_version = MetaString(list, "resourceVersion");
  result.continue_token = MetaString(list, "continue");
  return result;
}

ListResult Client::ListAll(const ResourceRef& ref, const std::string& ns,
                           const ListOptions& options, int64_t page_size) {
  ListOptions page = options;
  page.limit = page_size;
  ListResult all;
  for (;;) {
    ListResult part = List(ref, ns, page);
    for (auto& item : part.items) all.items.push_back(std::move(item));
    // The first page's resourceVersion is the snapshot all pages come from.
    if (all.resource_version.empty()) all.resource_version = part.resource_version;
    if (part.continue_token.empty()) break;
    page.continue_token = part.continue_token;
    page.resource_version.clear();  // continue carries the snapshot
  }
  return all;
}

nlohmann::json Client::Create(const ResourceRef& ref, const std::string& ns,
                              const nlohmann::json& obj) {
  std::string target_ns = ns.empty() ? MetaString(obj, "namespace") : ns;
  return Write("POST", ref.Path(target_ns), obj, "application/json");
}

nlohmann::json Client::Update(const ResourceRef& ref, const nlohmann::json& obj) {
  return Write("PUT", ref.Path(MetaString(obj, "namespace"), MetaString(obj, "name")), obj,
               "application/json");
}

nlohmann::json Client::UpdateStatus(const ResourceRef& ref, const nlohmann::json& obj) {
  return Write("PUT", ref.Path(MetaString(obj, "namespace"), MetaString(obj, "name"), "status"),
               obj, "application/json");
}

nlohmann::json Client::Delete(const ResourceRef& ref, const std::string& ns,
                              const std::string& name, const DeleteOptions& options) {
  nlohmann::json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.precondition_uid.empty()) {
    body["preconditions"]["uid"] = options.precondition_uid;
  }
  if (!options.precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = options.precondition_resource_version;
  }
  if (!options.propagation_policy.empty()) {
    body["propagationPolicy"] = options.propagation_policy;
  }
  if (options.grace_period_seconds) body["gracePeriodSeconds"] = *options.grace_period_seconds;
  return Write("DELETE", ref.Path(ns, name), body, "application/json");
}

nlohmann::json Client::Patch(const ResourceRef& ref, const std::string& ns, const std::string& name,
                             const nlohmann::json& merge_patch) {
  return Write("PATCH", ref.Path(ns, name), merge_patch, "application/merge-patch+json");
}

nlohmann::json Client::PatchStatus(const ResourceRef& ref, const std::string& ns,
                                   const std::string& name, const nlohmann::json& merge_patch) {
  return Write("PATCH", ref.Path(ns, name, "status"), merge_patch, "application/merge-patch+json");
}

nlohmann::json Client::Apply(const ResourceRef& ref, const std::string& ns, const std::string& name,
                             const nlohmann::json& obj, const std::string& field_manager,
                             bool force) {
  std::string query = "?fieldManager=" + UrlEncode(field_manager);
  if (force) query += "&force=true";
  return Write("PATCH", ref.Path(ns, name) + query, obj, "application/apply-patch+yaml");
}

nlohmann::json Client::ApplyStatus(const ResourceRef& ref, const std::string& ns,
                                   const std::string& name, const nlohmann::json& obj,
                                   const std::string& field_manager, bool force) {
  std::string query = "?fieldManager=" + UrlEncode(field_manager);
  if (force) query += "&force=true";
  return Write("PATCH", ref.Path(ns, name, "status") + query, obj, "application/apply-patch+yaml");
}

}  // namespace vios::kube
