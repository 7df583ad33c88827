// Peer-channel TLS material in Secrets: the cluster CA ("<cluster>-peer-ca") and one certificate
// per member ("<member>-peer-tls"), issued and rotated before expiry (DESIGN.md §6, §10).
//
// Secret layout (type kubernetes.io/tls; the agent mounts or reads its own):
//   <member>-peer-tls: tls.crt, tls.key (the member's certificate, CN and DNS SAN = member name,
//                      IP SAN = the host of status.peerAddress when it is an IP literal),
//                      ca.crt (the CA bundle to trust: current CA, plus the previous one while a
//                      CA rotation is under way).
//   <cluster>-peer-ca:  tls.crt, tls.key (the CA), ca.crt (the same bundle). Only the operator
//                      reads this one.
// The CA Secret is owned by the VIOSCluster, the member Secret by the VIOSMember, so both are
// garbage collected with their owners.
//
//   PeerTls tls(client, {}, clock);
//   WallTime next = tls.EnsureCa(cluster);                      // creates or rotates the CA
//   std::optional<WallTime> when = tls.EnsureMemberCertificate(member);
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "operator/api_time.h"

namespace vios::op {

struct PkiOptions {
  std::chrono::seconds ca_validity{std::chrono::hours(24 * 365)};
  std::chrono::seconds cert_validity{std::chrono::hours(24 * 30)};
};

std::string PeerCaSecretName(const std::string& cluster);
std::string PeerTlsSecretName(const std::string& member);

class PeerTls {
 public:
  PeerTls(kube::Client& client, PkiOptions options, WallClock clock);

  // EnsureCa creates the cluster's CA Secret or rotates the CA once it reaches its renewal time
  // (the old CA stays in the bundle until it expires). Returns the next renewal time.
  WallTime EnsureCa(const nlohmann::json& cluster);

  // EnsureMemberCertificate issues or renews the member's certificate: when missing, not signed
  // by the current CA, past its renewal time, or with names that no longer match. Returns the
  // next renewal time, or nullopt when the cluster's CA does not exist yet (look again soon).
  std::optional<WallTime> EnsureMemberCertificate(const nlohmann::json& member);

 private:
  std::optional<nlohmann::json> GetSecret(const std::string& ns, const std::string& name);
  // Write creates the Secret, or replaces it when existing is set.
  void Write(const nlohmann::json& secret, const std::optional<nlohmann::json>& existing);

  kube::Client& client_;
  const PkiOptions options_;
  WallClock clock_;
};

// SecretString decodes data[key] of a Secret ("" when absent or malformed).
std::string SecretString(const nlohmann::json& secret, const std::string& key);

}  // namespace vios::op
