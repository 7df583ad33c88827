// Kubeconfig and in-cluster configuration loading (yaml-cpp).
#include "common/kube/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/kube/errors.h"
#include "common/util/base64.h"

namespace vios::kube {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(what + " " + path.string() + ": cannot open file");
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// DecodeBase64 decodes the *-data fields of a kubeconfig (standard alphabet, padded).
std::string DecodeBase64(const std::string& text, const std::string& what) {
  std::optional<std::string> out = util::Base64Decode(text);
  if (!out) throw ConfigError(what + ": invalid base64");
  return *out;
}

// NamedEntry finds `name` in a kubeconfig list (clusters/users/contexts) and returns its inner
// map (`cluster:`, `user:`, `context:`).
YAML::Node NamedEntry(const YAML::Node& root, const char* list, const char* inner,
                      const std::string& name, const std::string& source) {
  YAML::Node entries = root[list];
  if (entries && !entries.IsSequence()) {
    throw ConfigError("kubeconfig " + source + ": '" + list + "' is not a list");
  }
  if (entries) {
    for (const YAML::Node& entry : entries) {
      if (entry.IsMap() && entry["name"] && entry["name"].as<std::string>() == name) {
        YAML::Node body = entry[inner];
        if (!body || !body.IsMap()) {
          throw ConfigError("kubeconfig " + source + ": " + list + " entry '" + name +
                            "' has no '" + inner + "' map");
        }
        return body;
      }
    }
  }
  throw ConfigError("kubeconfig " + source + ": " + std::string(inner) + " '" + name +
                    "' not found");
}

std::string Str(const YAML::Node& map, const char* key) {
  YAML::Node value = map[key];
  if (!value || value.IsNull()) return "";
  return value.as<std::string>();
}

// DataOrFile reads a PEM value given inline (base64 *-data) or as a file path.
std::string DataOrFile(const YAML::Node& map, const char* data_key, const char* file_key,
                       const fs::path& base_dir, const std::string& source) {
  std::string data = Str(map, data_key);
  if (!data.empty()) return DecodeBase64(data, "kubeconfig " + source + ": " + data_key);
  std::string file = Str(map, file_key);
  if (file.empty()) return "";
  fs::path path(file);
  if (path.is_relative()) path = base_dir / path;
  return ReadFile(path, "kubeconfig " + source + ": " + file_key);
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

Config ParseKubeconfig(const std::string& text, const fs::path& base_dir, const std::string& source,
                       const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError("kubeconfig " + source + ": invalid YAML at line " +
                      std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) {
    throw ConfigError("kubeconfig " + source + ": not a YAML map (is this a kubeconfig?)");
  }
  Config config;
  try {
    std::string context_name = context.empty() ? Str(root, "current-context") : context;
    if (context_name.empty()) {
      throw ConfigError("kubeconfig " + source + ": no current-context and no context given");
    }
    YAML::Node ctx = NamedEntry(root, "contexts", "context", context_name, source);
    std::string cluster_name = Str(ctx, "cluster");
    YAML::Node cluster = NamedEntry(root, "clusters", "cluster", cluster_name, source);
    config.server = Str(cluster, "server");
    if (config.server.empty()) {
      throw ConfigError("kubeconfig " + source + ": cluster '" + cluster_name + "' has no server");
    }
    config.ca_pem = DataOrFile(cluster, "certificate-authority-data", "certificate-authority",
                               base_dir, source);
    config.insecure_skip_tls_verify =
        cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>();
    config.tls_server_name = Str(cluster, "tls-server-name");
    std::string user_name = Str(ctx, "user");
    if (!user_name.empty()) {
      YAML::Node user = NamedEntry(root, "users", "user", user_name, source);
      config.client_cert_pem =
          DataOrFile(user, "client-certificate-data", "client-certificate", base_dir, source);
      config.client_key_pem = DataOrFile(user, "client-key-data", "client-key", base_dir, source);
      if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
        throw ConfigError(
            "kubeconfig " + source + ": user '" + user_name +
            "' has a client certificate without a key or a key without a certificate");
      }
      config.token = Str(user, "token");
      std::string token_file = Str(user, "tokenFile");
      if (!token_file.empty()) {
        fs::path path(token_file);
        if (path.is_relative()) path = base_dir / path;
        ReadFile(path, "kubeconfig " + source + ": tokenFile");  // fail now, not at first request
        config.token_file = path.string();
      }
    }
    std::string ns = Str(ctx, "namespace");
    if (!ns.empty()) config.default_namespace = ns;
  } catch (const YAML::Exception& e) {
    throw ConfigError("kubeconfig " + source + ": unexpected structure at line " +
                      std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return config;
}

Config LoadKubeconfig(const fs::path& path, const std::string& context) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw ConfigError("kubeconfig " + path.string() + ": file not found");
  }
  std::string text = ReadFile(path, "kubeconfig");
  return ParseKubeconfig(text, path.parent_path(), path.string(), context);
}

Config LoadInClusterConfig(const fs::path& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    throw ConfigError(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  }
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6 literal
  Config config;
  config.server = "https://" + h + ":" + port;
  config.token_file = (root / "token").string();
  if (Trim(ReadFile(root / "token", "in-cluster config: token")).empty()) {
    throw ConfigError("in-cluster config: " + config.token_file + " is empty");
  }
  config.ca_pem = ReadFile(root / "ca.crt", "in-cluster config: CA");
  std::error_code ec;
  if (fs::exists(root / "namespace", ec)) {
    std::string ns = Trim(ReadFile(root / "namespace", "in-cluster config: namespace"));
    if (!ns.empty()) config.default_namespace = ns;
  }
  return config;
}

Config LoadDefaultConfig() {
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string first(env);
    first = first.substr(0, first.find(':'));
    return LoadKubeconfig(first);
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0') {
    return LoadInClusterConfig();
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr) {
    throw ConfigError("no KUBECONFIG, not in a cluster, and HOME is not set");
  }
  return LoadKubeconfig(fs::path(home) / ".kube" / "config");
}

}  // namespace vios::kube
