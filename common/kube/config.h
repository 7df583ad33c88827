// Where the API server is and how to authenticate: from a kubeconfig file or from the pod's
// service account (in-cluster).
//
//   kube::Config config = kube::LoadDefaultConfig();   // $KUBECONFIG, in-cluster, ~/.kube/config
//   kube::Client client(config);
//
// Certificates and keys are kept in memory as PEM (read from the *-data fields or the files the
// kubeconfig names); the transport hands them to OpenSSL directly, so nothing secret is written to
// disk. Every failure is a kube::ConfigError naming the file and the problem.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace vios::kube {

// Config is everything a Client needs to reach one API server.
struct Config {
  std::string server;           // "https://127.0.0.1:6443" (http:// for tests only)
  std::string ca_pem;           // CA bundle that signs the server certificate (PEM)
  std::string client_cert_pem;  // client certificate (PEM), empty if none
  std::string client_key_pem;   // client private key (PEM), empty if none
  std::string token;            // static bearer token, empty if none
  std::string token_file;       // bearer token re-read from this file (rotated tokens)
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;                // name to verify instead of the server's host
  std::string default_namespace = "default";  // the context's (or service account's) namespace
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
};

// LoadKubeconfig reads a kubeconfig file and resolves context (empty = current-context).
// Relative file paths inside it are relative to the kubeconfig's directory.
Config LoadKubeconfig(const std::filesystem::path& path, const std::string& context = "");

// ParseKubeconfig parses kubeconfig text; base_dir resolves relative paths, source names the
// text in error messages.
Config ParseKubeconfig(const std::string& text, const std::filesystem::path& base_dir,
                       const std::string& source, const std::string& context = "");

// kServiceAccountDir is where the kubelet mounts the service account token, CA and namespace.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// LoadInClusterConfig uses KUBERNETES_SERVICE_HOST/PORT and the service account files under
// root (overridable for tests).
Config LoadInClusterConfig(const std::filesystem::path& root = kServiceAccountDir);

// LoadDefaultConfig tries, in order: $KUBECONFIG (first entry), in-cluster (when
// KUBERNETES_SERVICE_HOST is set), $HOME/.kube/config.
Config LoadDefaultConfig();

}  // namespace vios::kube
