// Test PKI for peer-channel tests and benchmarks: a CA and leaf certificates made with the
// openssl CLI in a temporary directory (leaf SANs: DNS:<name>, IP:127.0.0.1).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "node-agent/peer/peer_tls.h"

namespace vios::agent::peer::testing {

namespace fs = std::filesystem;

inline void Run(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (rc != 0) {
    throw std::runtime_error("failed: " + cmd);
  }
}

// Pki makes CAs and leaf certificates in a temporary directory.
class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/vios-peer-pki-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~Pki() { fs::remove_all(dir_); }

  void MakeCa(const std::string& name) {
    const std::string p = (dir_ / name).string();
    Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=" +
        name + " -keyout " + p + ".key -out " + p + ".crt" +
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
  }
  // MakeLeaf issues name's certificate from ca with SANs DNS:name and IP:127.0.0.1.
  void MakeLeaf(const std::string& name, const std::string& ca) {
    const std::string p = (dir_ / name).string();
    const std::string c = (dir_ / ca).string();
    std::ofstream(p + ".ext") << "subjectAltName=DNS:" << name << ",IP:127.0.0.1\n"
                              << "extendedKeyUsage=serverAuth,clientAuth\n"
                              << "basicConstraints=CA:FALSE\n"
                              << "keyUsage=critical,digitalSignature\n";
    Run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" +
        name + " -keyout " + p + ".key -out " + p + ".csr");
    Run("openssl x509 -req -in " + p + ".csr -CA " + c + ".crt -CAkey " + c +
        ".key -CAcreateserial -days 2 -out " + p + ".crt -extfile " + p + ".ext");
  }
  PeerTls Tls(const std::string& leaf, const std::string& trusted_ca) const {
    return {.ca_file = (dir_ / (trusted_ca + ".crt")).string(),
            .cert_file = (dir_ / (leaf + ".crt")).string(),
            .key_file = (dir_ / (leaf + ".key")).string()};
  }
  const fs::path& dir() const { return dir_; }
  // WithRogue: the cluster CA "cluster-ca" with leaves node-a and node-b, and a leaf "rogue" of
  // another CA ("other-ca"): what the TLS refusal tests need.
  static Pki* WithRogue() {
    auto* pki = new Pki();
    pki->MakeCa("cluster-ca");
    pki->MakeCa("other-ca");
    pki->MakeLeaf("node-a", "cluster-ca");
    pki->MakeLeaf("node-b", "cluster-ca");
    pki->MakeLeaf("rogue", "other-ca");
    return pki;
  }

 private:
  fs::path dir_;
};

}  // namespace vios::agent::peer::testing
