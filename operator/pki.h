// Peer-channel PKI: a per-cluster certificate authority and one certificate per member, for the
// agents' mutual-TLS peer channel (DESIGN.md §6, §10). OpenSSL's C API; keys are ECDSA P-256;
// everything is PEM text, as stored in Kubernetes Secrets.
//
//   CertificateAuthority ca = CreateCa("vios-peer-ca default/c1", now, std::chrono::hours(24 *
//   365)); KeyPair member = IssueCertificate(ca, {.common_name = "node-a", .dns_names = {"node-a"},
//                                          .ip_addresses = {"127.77.0.2"}}, now);
//   std::string why;
//   bool ok = VerifyCertificate(member.cert_pem, ca.cert_pem, now, &why);
//
// Rotation: a certificate is renewed once two thirds of its lifetime have passed (RenewalTime),
// so a renewal has a third of the lifetime to reach every agent. Failures throw PkiError.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/util/base64.h"
#include "operator/api_time.h"

namespace vios::op {

class PkiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// KeyPair is a certificate and its private key (PKCS#8), both PEM.
struct KeyPair {
  std::string cert_pem{};
  std::string key_pem{};
};
using CertificateAuthority = KeyPair;

struct CertificateRequest {
  std::string common_name{};
  std::vector<std::string> dns_names{};
  std::vector<std::string> ip_addresses{};  // IPv4 or IPv6 literals
  std::chrono::seconds validity{std::chrono::hours(24 * 30)};
};

// CertificateInfo is what the operator needs to know about a stored certificate.
struct CertificateInfo {
  std::string common_name;
  std::string issuer_common_name;
  WallTime not_before;
  WallTime not_after;
  bool is_ca = false;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

// CreateCa makes a self-signed CA certificate valid from now (minus a minute of clock-skew
// allowance) for validity.
CertificateAuthority CreateCa(const std::string& common_name, WallTime now,
                              std::chrono::seconds validity);

// IssueCertificate signs a leaf certificate usable as TLS server and client (the peer channel
// is mutual) with ca. Its lifetime never extends past the CA's.
KeyPair IssueCertificate(const CertificateAuthority& ca, const CertificateRequest& req,
                         WallTime now);

// ReadCertificate parses the first certificate of pem; nullopt if it is not one.
std::optional<CertificateInfo> ReadCertificate(const std::string& pem);

// VerifyCertificate checks that cert_pem chains to one of the CA certificates in ca_bundle_pem
// and is valid at time at. On failure *error says why.
bool VerifyCertificate(const std::string& cert_pem, const std::string& ca_bundle_pem, WallTime at,
                       std::string* error);

// KeyMatches tells whether key_pem is the private key of cert_pem.
bool KeyMatches(const std::string& cert_pem, const std::string& key_pem);

// RenewalTime is not_before + 2/3 of the lifetime.
WallTime RenewalTime(const CertificateInfo& info);

// Secret data is base64: common/util/base64.h.
using util::Base64Decode;
using util::Base64Encode;

}  // namespace vios::op
