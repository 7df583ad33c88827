// Peer-channel certificates with OpenSSL's C API (see pki.h). RFC 5280 profiles: the CA has
// basicConstraints CA:TRUE and keyCertSign; leaves have CA:FALSE, serverAuth + clientAuth and
// their names in subjectAltName (RFC 5280 §4.2.1.6; TLS peers match SANs, not the CN).
#include "operator/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace vios::op {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

[[noreturn]] void Fail(const std::string& what) {
  unsigned long code = ERR_get_error();
  char buf[256] = "no OpenSSL error";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  throw PkiError(what + ": " + buf);
}

KeyPtr NewKey() {
  EVP_PKEY_CTX* raw = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
  std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>> ctx(raw);
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) <= 0 ||
      EVP_PKEY_keygen(ctx.get(), &key) <= 0) {
    Fail("generating an ECDSA P-256 key");
  }
  return KeyPtr(key);
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

BioPtr ReadBio(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) Fail("allocating a BIO");
  return bio;
}

X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio = ReadBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

KeyPtr ParseKey(const std::string& pem) {
  BioPtr bio = ReadBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) Fail("adding extension " + value);
}

void SetName(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("vios"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    Fail("setting the certificate name");
  }
}

time_t ToTimeT(WallTime t) { return std::chrono::system_clock::to_time_t(t); }

// NewCert fills the fields every certificate has: version 3, random serial, validity, subject.
X509Ptr NewCert(const std::string& cn, WallTime not_before, WallTime not_after, EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) Fail("allocating a certificate");
  BnPtr serial(BN_new());
  // RFC 5280 §4.1.2.2: positive, at most 20 octets; 127 random bits keep it unique.
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    Fail("generating a serial number");
  }
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), ToTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), ToTimeT(not_after)) == nullptr) {
    Fail("setting the validity");
  }
  SetName(X509_get_subject_name(cert.get()), cn);
  if (X509_set_pubkey(cert.get(), key) != 1) Fail("setting the public key");
  return cert;
}

KeyPair Serialize(X509* cert, EVP_PKEY* key) {
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    Fail("writing PEM");
  }
  return {BioString(cert_bio.get()), BioString(key_bio.get())};
}

std::optional<WallTime> FromAsn1(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string NameEntry(const X509_NAME* name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

// kSkewAllowance backdates notBefore so that a peer whose clock is slightly behind accepts a
// fresh certificate.
constexpr std::chrono::minutes kSkewAllowance{1};

}  // namespace

CertificateAuthority CreateCa(const std::string& common_name, WallTime now,
                              std::chrono::seconds validity) {
  KeyPtr key = NewKey();
  X509Ptr cert = NewCert(common_name, now - kSkewAllowance, now + validity, key.get());
  SetName(X509_get_issuer_name(cert.get()), common_name);
  AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) Fail("self-signing the CA");
  return Serialize(cert.get(), key.get());
}

KeyPair IssueCertificate(const CertificateAuthority& ca, const CertificateRequest& req,
                         WallTime now) {
  X509Ptr ca_cert = ParseCert(ca.cert_pem);
  KeyPtr ca_key = ParseKey(ca.key_pem);
  if (!ca_cert || !ca_key) throw PkiError("the CA certificate or key is not valid PEM");
  std::optional<WallTime> ca_not_after = FromAsn1(X509_get0_notAfter(ca_cert.get()));
  WallTime not_after = now + req.validity;
  if (ca_not_after && *ca_not_after < not_after) not_after = *ca_not_after;

  KeyPtr key = NewKey();
  X509Ptr cert = NewCert(req.common_name, now - kSkewAllowance, not_after, key.get());
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1) {
    Fail("setting the issuer");
  }
  AddExt(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  AddExt(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  AddExt(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  AddExt(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : req.dns_names) san += (san.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& ip : req.ip_addresses) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  if (!san.empty()) AddExt(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) Fail("signing the certificate");
  return Serialize(cert.get(), key.get());
}

std::optional<CertificateInfo> ReadCertificate(const std::string& pem) {
  X509Ptr cert = ParseCert(pem);
  if (!cert) return std::nullopt;
  CertificateInfo info;
  info.common_name = NameEntry(X509_get_subject_name(cert.get()), NID_commonName);
  info.issuer_common_name = NameEntry(X509_get_issuer_name(cert.get()), NID_commonName);
  auto nb = FromAsn1(X509_get0_notBefore(cert.get()));
  auto na = FromAsn1(X509_get0_notAfter(cert.get()));
  if (!nb || !na) return std::nullopt;
  info.not_before = *nb;
  info.not_after = *na;
  info.is_ca = X509_check_ca(cert.get()) > 0;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type == GEN_DNS) {
        const ASN1_STRING* s = n->d.dNSName;
        info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                    static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (n->type == GEN_IPADD) {
        const ASN1_STRING* s = n->d.iPAddress;
        char buf[INET6_ADDRSTRLEN] = {};
        int len = ASN1_STRING_length(s);
        int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
        if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof(buf))) {
          info.ip_addresses.emplace_back(buf);
        }
      }
    }
    GENERAL_NAMES_free(names);
  }
  return info;
}

bool VerifyCertificate(const std::string& cert_pem, const std::string& ca_bundle_pem, WallTime at,
                       std::string* error) {
  X509Ptr cert = ParseCert(cert_pem);
  if (!cert) {
    *error = "not a PEM certificate";
    return false;
  }
  StorePtr store(X509_STORE_new());
  if (!store) Fail("allocating a certificate store");
  BioPtr bio = ReadBio(ca_bundle_pem);
  int cas = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store.get(), ca);
    X509_free(ca);
    ++cas;
  }
  ERR_clear_error();
  if (cas == 0) {
    *error = "the CA bundle holds no certificate";
    return false;
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    Fail("initializing verification");
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), ToTimeT(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    *error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return false;
  }
  return true;
}

bool KeyMatches(const std::string& cert_pem, const std::string& key_pem) {
  X509Ptr cert = ParseCert(cert_pem);
  KeyPtr key = ParseKey(key_pem);
  bool ok = cert && key && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

WallTime RenewalTime(const CertificateInfo& info) {
  return info.not_before + (info.not_after - info.not_before) * 2 / 3;
}

}  // namespace vios::op
