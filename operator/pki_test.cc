// Tests of the peer-channel PKI: issue, verify the chain with OpenSSL, refuse foreign CAs,
// expiry and renewal times.
#include "operator/pki.h"

#include <gtest/gtest.h>

namespace vios::op {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

const WallTime kT0 = *ParseApiTime(std::string_view("2026-11-25T20:00:00Z"));

TEST(PkiTest, IssuedCertificateVerifiesAgainstItsCa) {
  CertificateAuthority ca = CreateCa("vios-peer-ca vios/c1", kT0, hours(24 * 365));
  KeyPair leaf = IssueCertificate(
      ca, {.common_name = "node-a", .dns_names = {"node-a"}, .ip_addresses = {"127.77.0.2"}}, kT0);
  std::string why;
  EXPECT_TRUE(VerifyCertificate(leaf.cert_pem, ca.cert_pem, kT0 + hours(1), &why)) << why;
  EXPECT_TRUE(KeyMatches(leaf.cert_pem, leaf.key_pem));
  EXPECT_FALSE(KeyMatches(leaf.cert_pem, ca.key_pem));

  auto info = ReadCertificate(leaf.cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->common_name, "node-a");
  EXPECT_EQ(info->issuer_common_name, "vios-peer-ca vios/c1");
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"node-a"});
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"127.77.0.2"});
  EXPECT_EQ(info->not_after, kT0 + hours(24 * 30));
  auto ca_info = ReadCertificate(ca.cert_pem);
  ASSERT_TRUE(ca_info);
  EXPECT_TRUE(ca_info->is_ca);
}

TEST(PkiTest, CertificateFromAnotherCaIsRefused) {
  CertificateAuthority ours = CreateCa("ours", kT0, hours(24));
  CertificateAuthority theirs = CreateCa("theirs", kT0, hours(24));
  KeyPair leaf = IssueCertificate(theirs, {.common_name = "intruder"}, kT0);
  std::string why;
  EXPECT_FALSE(VerifyCertificate(leaf.cert_pem, ours.cert_pem, kT0, &why));
  EXPECT_FALSE(why.empty());
  // A bundle holding both CAs (during CA rotation) accepts either.
  EXPECT_TRUE(VerifyCertificate(leaf.cert_pem, ours.cert_pem + theirs.cert_pem, kT0, &why)) << why;
}

TEST(PkiTest, ExpiredCertificateIsRefusedAndLeafNeverOutlivesCa) {
  CertificateAuthority ca = CreateCa("ca", kT0, hours(24));
  KeyPair leaf = IssueCertificate(ca, {.common_name = "n", .validity = hours(24 * 30)}, kT0);
  auto info = ReadCertificate(leaf.cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->not_after, kT0 + hours(24));
  std::string why;
  EXPECT_FALSE(VerifyCertificate(leaf.cert_pem, ca.cert_pem, kT0 + hours(25), &why));
  EXPECT_NE(why.find("expired"), std::string::npos) << why;
}

TEST(PkiTest, RenewalAtTwoThirdsOfLifetime) {
  CertificateAuthority ca = CreateCa("ca", kT0, hours(24 * 365));
  KeyPair leaf = IssueCertificate(ca, {.common_name = "n", .validity = hours(30)}, kT0);
  auto info = ReadCertificate(leaf.cert_pem);
  ASSERT_TRUE(info);
  // notBefore is backdated one minute for clock skew: lifetime 30 h + 1 min.
  EXPECT_EQ(RenewalTime(*info),
            info->not_before + seconds(hours(30) + std::chrono::minutes(1)) * 2 / 3);
}

TEST(PkiTest, GarbageInputIsRejectedNotCrashed) {
  EXPECT_FALSE(ReadCertificate("not a certificate"));
  std::string why;
  EXPECT_FALSE(VerifyCertificate("junk", "junk", kT0, &why));
  EXPECT_THROW(IssueCertificate({"junk", "junk"}, {.common_name = "n"}, kT0), PkiError);
}

}  // namespace
}  // namespace vios::op
