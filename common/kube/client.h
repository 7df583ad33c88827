// A Kubernetes API client for any resource by group/version/resource, JSON in and out.
//
//   kube::Client client(kube::LoadDefaultConfig());
//   const kube::ResourceRef kConfigMaps{"", "v1", "configmaps", true};
//   nlohmann::json cm = client.Get(kConfigMaps, "default", "settings");
//   cm["data"]["mode"] = "fast";
//   client.Update(kConfigMaps, cm);                 // PUT with cm's resourceVersion
//   client.Apply(kConfigMaps, "default", "settings", desired, "vios-operator");
//
// Failures throw kube::ApiError (see errors.h). Reads (GET, LIST) are retried with bounded
// exponential backoff on transport errors, 429 and 5xx; writes are retried only when the server
// cannot have acted on them (connection refused, 429). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/config.h"
#include "common/kube/errors.h"
#include "common/kube/transport.h"

namespace vios::kube {

// ResourceRef names a resource type: group ("" for the core group), version, plural resource
// name, and whether its objects live in namespaces.
struct ResourceRef {
  std::string group;
  std::string version;
  std::string resource;
  bool namespaced = true;

  // Path returns the URL path for ns/name (either may be empty) and an optional subresource.
  std::string Path(const std::string& ns, const std::string& name = "",
                   const std::string& subresource = "") const;
  // ApiVersion returns "v1" or "group/version".
  std::string ApiVersion() const;
};

// Well-known resources the project uses.
namespace resources {
inline const ResourceRef kConfigMaps{"", "v1", "configmaps", true};
inline const ResourceRef kSecrets{"", "v1", "secrets", true};
inline const ResourceRef kNamespaces{"", "v1", "namespaces", false};
inline const ResourceRef kNodes{"", "v1", "nodes", false};
inline const ResourceRef kPods{"", "v1", "pods", true};
inline const ResourceRef kLeases{"coordination.k8s.io", "v1", "leases", true};
inline const ResourceRef kEvents{"events.k8s.io", "v1", "events", true};
inline const ResourceRef kVIOSClusters{"vios.dev", "v1alpha1", "viosclusters", true};
inline const ResourceRef kVIOSMembers{"vios.dev", "v1alpha1", "viosmembers", true};
inline const ResourceRef kVIOSVolumes{"vios.dev", "v1alpha1", "viosvolumes", true};
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;           // 0 = no limit
  std::string continue_token;  // from the previous page's ListResult
  std::string resource_version;
};

// ListResult is one page of a list.
struct ListResult {
  nlohmann::json items = nlohmann::json::array();
  std::string resource_version;  // the list's metadata.resourceVersion (start a watch here)
  std::string continue_token;    // empty on the last page
};

struct DeleteOptions {
  std::string precondition_uid;
  std::string precondition_resource_version;
  std::string propagation_policy;  // "Foreground", "Background", "Orphan" or ""
  std::optional<int64_t> grace_period_seconds;
};

// RetryPolicy bounds the retries of safe requests.
struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{3000};
};

class Client {
 public:
  explicit Client(const Config& config, RetryPolicy retry = {});

  nlohmann::json Get(const ResourceRef& ref, const std::string& ns, const std::string& name);
  ListResult List(const ResourceRef& ref, const std::string& ns, const ListOptions& options = {});
  // ListAll follows continue tokens (page_size objects per request) and returns every object.
  ListResult ListAll(const ResourceRef& ref, const std::string& ns, const ListOptions& options = {},
                     int64_t page_size = 500);
  // Create posts obj into ns (metadata.namespace of obj is used when ns is empty).
  nlohmann::json Create(const ResourceRef& ref, const std::string& ns, const nlohmann::json& obj);
  // Update replaces obj (PUT); its metadata.resourceVersion is the precondition: a stale one
  // fails with kConflict.
  nlohmann::json Update(const ResourceRef& ref, const nlohmann::json& obj);
  nlohmann::json UpdateStatus(const ResourceRef& ref, const nlohmann::json& obj);
  // Delete returns the server's answer (the object being deleted, or a Status).
  nlohmann::json Delete(const ResourceRef& ref, const std::string& ns, const std::string& name,
                        const DeleteOptions& options = {});
  // Patch applies a JSON merge patch (RFC 7386).
  nlohmann::json Patch(const ResourceRef& ref, const std::string& ns, const std::string& name,
                       const nlohmann::json& merge_patch);
  nlohmann::json PatchStatus(const ResourceRef& ref, const std::string& ns, const std::string& name,
                             const nlohmann::json& merge_patch);
  // Apply is server-side apply: obj is the caller's full intent, owned by field_manager; force
  // takes over fields other managers own instead of failing with kConflict.
  nlohmann::json Apply(const ResourceRef& ref, const std::string& ns, const std::string& name,
                       const nlohmann::json& obj, const std::string& field_manager,
                       bool force = false);
  nlohmann::json ApplyStatus(const ResourceRef& ref, const std::string& ns, const std::string& name,
                             const nlohmann::json& obj, const std::string& field_manager,
                             bool force = false);

  // Request sends one request with the retry rules above and returns the parsed JSON body.
  // idempotent marks GET-like requests that may be repeated after any retryable failure.
  nlohmann::json Request(const HttpRequest& req, bool idempotent);

  Transport& transport() { return *transport_; }
  const Config& config() const { return transport_->config(); }
  const RetryPolicy& retry_policy() const { return retry_; }

 private:
  nlohmann::json Write(const std::string& method, const std::string& path,
                       const nlohmann::json& body, const std::string& content_type);

  std::unique_ptr<Transport> transport_;
  RetryPolicy retry_;
};

// UrlEncode percent-encodes a query parameter value (RFC 3986 unreserved characters kept).
std::string UrlEncode(const std::string& value);

// Backoff returns the delay before retry number attempt (0-based): initial * 2^attempt, capped,
// with up to 20% jitter removed so that many clients do not retry in lockstep.
std::chrono::milliseconds Backoff(const RetryPolicy& policy, int attempt);

}  // namespace vios::kube
