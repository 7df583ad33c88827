// Peer channel credentials from the operator-issued files (peer_tls.h).
#include "node-agent/peer/peer_tls.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

namespace vios::agent::peer {
namespace {

constexpr int kInvalidArgument = 3;

std::string ReadPem(const std::string& path, const char* what, const char* marker) {
  if (path.empty()) {
    throw PeerError(kInvalidArgument, std::string("peer TLS: no ") + what + " file configured");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw PeerError(kInvalidArgument,
                    std::string("peer TLS: cannot read ") + what + " file " + path);
  }
  std::ostringstream b;
  b << in.rdbuf();
  if (b.str().find(marker) == std::string::npos) {
    throw PeerError(kInvalidArgument, std::string("peer TLS: ") + what + " file " + path +
                                          " holds no PEM block \"" + marker + "\"");
  }
  return b.str();
}

std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> Provider(const PeerTls& tls) {
  CheckTlsFiles(tls);
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file, std::max(1u, tls.refresh_interval_seconds));
}

}  // namespace

void CheckTlsFiles(const PeerTls& tls) {
  ReadPem(tls.ca_file, "CA certificate", "-----BEGIN CERTIFICATE-----");
  ReadPem(tls.cert_file, "certificate", "-----BEGIN CERTIFICATE-----");
  ReadPem(tls.key_file, "private key", "PRIVATE KEY-----");
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const PeerTls& tls) {
  grpc::experimental::TlsServerCredentialsOptions options(Provider(tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // Mutual TLS: a peer without a certificate from the cluster CA never gets to an RPC.
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const PeerTls& tls) {
  // The provider first: TlsCredentialsOptions owns a C object that only credentials creation
  // frees, so nothing may throw between constructing options and TlsCredentials().
  auto provider = Provider(tls);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  // The chain check says "some member of the cluster"; the name check says "the member we
  // meant" (its certificate must carry the name the client asked for).
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace vios::agent::peer
