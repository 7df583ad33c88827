// CHAP exchange of RFC 7143 §12.1.3. The challenge comes from OpenSSL's CSPRNG; comparisons of
// responses are constant time; a challenge reflected back by the initiator is refused (§12.1.3:
// the target must not accept its own challenge as the mutual one).
#include "node-agent/iscsi/chap.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace vios::iscsi {

std::array<uint8_t, 16> ChapResponse(uint8_t id, const std::string& secret,
                                     const std::vector<uint8_t>& challenge) {
  std::array<uint8_t, 16> digest{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return digest;
  unsigned int length = 0;
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  EVP_DigestUpdate(ctx, &id, 1);
  EVP_DigestUpdate(ctx, secret.data(), secret.size());
  EVP_DigestUpdate(ctx, challenge.data(), challenge.size());
  EVP_DigestFinal_ex(ctx, digest.data(), &length);
  EVP_MD_CTX_free(ctx);
  return digest;
}

bool RandomBytes(uint8_t* out, size_t length) {
  return RAND_bytes(out, static_cast<int>(length)) == 1;
}

ChapAuthenticator::Result ChapAuthenticator::Step(const TextKeys& request, TextKeys* response,
                                                  std::string* reason) {
  switch (state_) {
    case State::kWaitAlgorithm:
      return SendChallenge(request, response, reason);
    case State::kWaitResponse:
      return CheckResponse(request, response, reason);
    case State::kDone:
      break;
  }
  *reason = "CHAP keys after authentication completed";
  return Result::kFailure;
}

ChapAuthenticator::Result ChapAuthenticator::SendChallenge(const TextKeys& request,
                                                           TextKeys* response,
                                                           std::string* reason) {
  const std::string* algorithms = request.Find("CHAP_A");
  if (algorithms == nullptr) {
    // The AuthMethod answer may come in a PDU of its own; wait for CHAP_A.
    if (request.Has("CHAP_N") || request.Has("CHAP_R")) {
      *reason = "CHAP_R before challenge";
      return Result::kFailure;
    }
    return Result::kContinue;
  }
  bool md5 = false;
  for (auto a : SplitList(*algorithms)) md5 = md5 || a == "5";
  if (!md5) {
    response->Add("CHAP_A", "Reject");
    *reason = "initiator offers no CHAP_A=5 (MD5)";
    return Result::kFailure;
  }
  std::array<uint8_t, 1 + kChallengeLength> random{};
  if (!RandomBytes(random.data(), random.size())) {
    *reason = "no random bytes for the CHAP challenge";
    return Result::kFailure;
  }
  id_ = random[0];
  challenge_.assign(random.begin() + 1, random.end());
  response->Add("CHAP_A", "5");
  response->Add("CHAP_I", std::to_string(id_));
  response->Add("CHAP_C", EncodeHex(challenge_));
  state_ = State::kWaitResponse;
  return Result::kContinue;
}

ChapAuthenticator::Result ChapAuthenticator::CheckResponse(const TextKeys& request,
                                                           TextKeys* response,
                                                           std::string* reason) {
  const std::string* name = request.Find("CHAP_N");
  const std::string* answer = request.Find("CHAP_R");
  if (name == nullptr || answer == nullptr) {
    *reason = "missing CHAP_N or CHAP_R";
    return Result::kFailure;
  }
  if (*name != creds_.user) {
    *reason = "unknown CHAP_N";
    return Result::kFailure;
  }
  auto got = DecodeBinary(*answer);
  auto want = ChapResponse(id_, creds_.secret, challenge_);
  if (!got || got->size() != want.size() ||
      CRYPTO_memcmp(got->data(), want.data(), want.size()) != 0) {
    *reason = "wrong CHAP response";
    return Result::kFailure;
  }
  const std::string* mutual_id = request.Find("CHAP_I");
  const std::string* mutual_challenge = request.Find("CHAP_C");
  if (mutual_id != nullptr || mutual_challenge != nullptr) {
    if (mutual_id == nullptr || mutual_challenge == nullptr) {
      *reason = "mutual CHAP needs both CHAP_I and CHAP_C";
      return Result::kFailure;
    }
    if (creds_.mutual_secret.empty()) {
      *reason = "initiator asks for mutual CHAP, none configured";
      return Result::kFailure;
    }
    auto id = ParseNumber(*mutual_id);
    auto challenge = DecodeBinary(*mutual_challenge);
    if (!id || *id > 255 || !challenge || challenge->empty() || challenge->size() > 1024) {
      *reason = "malformed mutual CHAP_I/CHAP_C";
      return Result::kFailure;
    }
    if (*challenge == challenge_) {
      *reason = "initiator reflected the target's challenge";
      return Result::kFailure;
    }
    auto ours = ChapResponse(static_cast<uint8_t>(*id), creds_.mutual_secret, *challenge);
    response->Add("CHAP_N", creds_.mutual_user);
    response->Add("CHAP_R", EncodeHex(ours));
  } else if (!creds_.mutual_secret.empty()) {
    // The target is configured to prove itself; an initiator that does not ask is refused, as
    // the virtual port's "chap: mutual" setting means both sides must authenticate.
    *reason = "mutual CHAP required";
    return Result::kFailure;
  }
  state_ = State::kDone;
  return Result::kSuccess;
}

}  // namespace vios::iscsi
