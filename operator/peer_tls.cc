// Peer-channel certificates kept in Secrets (see peer_tls.h).
#include "operator/peer_tls.h"

#include <arpa/inet.h>

#include <algorithm>

#include "common/kube/errors.h"
#include "common/log/log.h"
#include "operator/node_daemonset.h"
#include "operator/pki.h"

namespace vios::op {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// PeerHost returns the host part of "host:port" / "[v6]:port".
std::string PeerHost(const std::string& address) {
  if (!address.empty() && address[0] == '[') {
    auto end = address.find(']');
    return end == std::string::npos ? "" : address.substr(1, end - 1);
  }
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

json TlsSecret(const std::string& ns, const std::string& name, const json& labels,
               const json& owner, const KeyPair& pair, const std::string& bundle) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels", labels},
            {"ownerReferences", {OwnerReference(owner)}}}},
          {"type", "kubernetes.io/tls"},
          {"data",
           {{"tls.crt", Base64Encode(pair.cert_pem)},
            {"tls.key", Base64Encode(pair.key_pem)},
            {"ca.crt", Base64Encode(bundle)}}}};
}

}  // namespace

std::string PeerCaSecretName(const std::string& cluster) { return cluster + "-peer-ca"; }
std::string PeerTlsSecretName(const std::string& member) { return member + "-peer-tls"; }

std::string SecretString(const json& secret, const std::string& key) {
  if (!secret.is_object() || !secret.contains("data") || !secret["data"].is_object()) return "";
  const json& data = secret["data"];
  if (!data.contains(key) || !data[key].is_string()) return "";
  return Base64Decode(data[key].get<std::string>()).value_or("");
}

PeerTls::PeerTls(kube::Client& client, PkiOptions options, WallClock clock)
    : client_(client), options_(options), clock_(std::move(clock)) {}

std::optional<json> PeerTls::GetSecret(const std::string& ns, const std::string& name) {
  try {
    return client_.Get(kube::resources::kSecrets, ns, name);
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kNotFound) return std::nullopt;
    throw;
  }
}

void PeerTls::Write(const json& secret, const std::optional<json>& existing) {
  if (!existing) {
    client_.Create(kube::resources::kSecrets, secret["metadata"]["namespace"].get<std::string>(),
                   secret);
    return;
  }
  json updated = secret;
  updated["metadata"]["resourceVersion"] = (*existing)["metadata"]["resourceVersion"];
  client_.Update(kube::resources::kSecrets, updated);  // a stale read fails with Conflict: retry
}

WallTime PeerTls::EnsureCa(const json& cluster) {
  const std::string ns = cluster["metadata"]["namespace"];
  const std::string name = cluster["metadata"]["name"];
  const WallTime now = clock_();
  std::optional<json> secret = GetSecret(ns, PeerCaSecretName(name));
  std::optional<CertificateInfo> current;
  if (secret) current = ReadCertificate(SecretString(*secret, "tls.crt"));
  if (current && current->is_ca && now < RenewalTime(*current) &&
      KeyMatches(SecretString(*secret, "tls.crt"), SecretString(*secret, "tls.key"))) {
    return RenewalTime(*current);
  }
  // Create, or rotate: the new CA goes first in the bundle, the old one stays while valid so
  // that members with old certificates are still trusted during the rollover.
  // X.509 limits a common name to 64 characters (RFC 5280 ub-common-name); long namespace and
  // cluster names are cut (the name is informative: trust comes from the key).
  std::string common_name = "vios-peer-ca " + ns + "/" + name;
  if (common_name.size() > 64) common_name.resize(64);
  CertificateAuthority ca = CreateCa(common_name, now, options_.ca_validity);
  std::string bundle = ca.cert_pem;
  if (current && current->is_ca && now < current->not_after) {
    bundle += SecretString(*secret, "tls.crt");
  }
  json labels = {{kClusterLabel, name}, {kManagedByLabel, kManagedByValue}};
  Write(TlsSecret(ns, PeerCaSecretName(name), labels, cluster, ca, bundle), secret);
  VIOS_LOG(kInfo, current ? "peer CA rotated" : "peer CA created")
      .Field("namespace", ns)
      .Field("cluster", name);
  return RenewalTime(*ReadCertificate(ca.cert_pem));
}

std::optional<WallTime> PeerTls::EnsureMemberCertificate(const json& member) {
  const std::string ns = member["metadata"]["namespace"];
  const std::string name = member["metadata"]["name"];
  const std::string cluster = member["spec"].value("cluster", "");
  const WallTime now = clock_();
  std::optional<json> ca_secret = GetSecret(ns, PeerCaSecretName(cluster));
  if (!ca_secret) return std::nullopt;
  CertificateAuthority ca{SecretString(*ca_secret, "tls.crt"), SecretString(*ca_secret, "tls.key")};
  const std::string bundle = SecretString(*ca_secret, "ca.crt");

  CertificateRequest req{
      .common_name = name, .dns_names = {name}, .validity = options_.cert_validity};
  std::string host = PeerHost(Str(member.value("status", json::object()), "peerAddress"));
  if (IsIpLiteral(host)) {
    req.ip_addresses.push_back(host);
  } else if (!host.empty() && host != name) {
    req.dns_names.push_back(host);
  }

  std::optional<json> secret = GetSecret(ns, PeerTlsSecretName(name));
  if (secret) {
    const std::string cert = SecretString(*secret, "tls.crt");
    std::optional<CertificateInfo> info = ReadCertificate(cert);
    std::string why;
    if (info && now < RenewalTime(*info) && info->dns_names == req.dns_names &&
        info->ip_addresses == req.ip_addresses &&
        KeyMatches(cert, SecretString(*secret, "tls.key")) &&
        VerifyCertificate(cert, ca.cert_pem, now, &why)) {
      if (SecretString(*secret, "ca.crt") != bundle) {
        json updated = *secret;
        updated["data"]["ca.crt"] = Base64Encode(bundle);
        client_.Update(kube::resources::kSecrets, updated);
      }
      return RenewalTime(*info);
    }
  }
  KeyPair pair = IssueCertificate(ca, req, now);
  json labels = {
      {"vios.dev/member", name}, {kClusterLabel, cluster}, {kManagedByLabel, kManagedByValue}};
  Write(TlsSecret(ns, PeerTlsSecretName(name), labels, member, pair, bundle), secret);
  VIOS_LOG(kInfo, secret ? "peer certificate renewed" : "peer certificate issued")
      .Field("namespace", ns)
      .Field("member", name);
  return RenewalTime(*ReadCertificate(pair.cert_pem));
}

}  // namespace vios::op
