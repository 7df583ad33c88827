// Mutual-TLS material of the peer channel (DESIGN.md §10): the cluster CA and this member's
// certificate and key, as files (the operator's Secret mounted into the agent's pod). gRPC
// re-reads the files every refresh_interval, so a certificate the operator rotates is picked up
// without a restart (replace the files atomically, e.g. the kubelet's Secret symlink swap).
//
//   PeerTls tls{.ca_file = "/etc/vios/peer/ca.crt", .cert_file = ".../tls.crt",
//               .key_file = ".../tls.key"};
//   auto creds = ServerCredentials(tls);   // requires and verifies the client's certificate
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

namespace vios::agent::peer {

struct PeerTls {
  std::string ca_file;    // PEM bundle of the cluster CA: peers must chain to it
  std::string cert_file;  // PEM certificate chain of this member
  std::string key_file;   // PEM private key of cert_file
  unsigned refresh_interval_seconds = 60;
};

// PeerError is a failure of the peer channel: configuration, connection or RPC. code is the
// gRPC status code (UNAVAILABLE for handshake failures, INVALID_ARGUMENT for refused input...).
class PeerError : public std::runtime_error {
 public:
  PeerError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// CheckTlsFiles throws PeerError (code 3, INVALID_ARGUMENT) naming the file that is missing,
// unreadable or not PEM of the expected kind. Called by ServerCredentials/ChannelCredentials so
// a bad mount fails at start-up with a clear message rather than at the first handshake.
void CheckTlsFiles(const PeerTls& tls);

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const PeerTls& tls);
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const PeerTls& tls);

}  // namespace vios::agent::peer
