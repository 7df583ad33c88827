// CHAP authentication for iSCSI login (RFC 7143 §12.1.3, RFC 1994): MD5 only (CHAP_A=5), one-way
// (the target authenticates the initiator) or mutual (the initiator also authenticates the target).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "node-agent/iscsi/text_keys.h"

namespace vios::iscsi {

// ChapCredentials: the initiator must answer with user/secret; if mutual_secret is non-empty the
// target answers the initiator's challenge as mutual_user with mutual_secret.
struct ChapCredentials {
  std::string user;
  std::string secret;
  std::string mutual_user;
  std::string mutual_secret;
  bool enabled() const { return !secret.empty(); }
};

// ChapResponse computes MD5(id || secret || challenge) (RFC 1994 §4.1).
std::array<uint8_t, 16> ChapResponse(uint8_t id, const std::string& secret,
                                     const std::vector<uint8_t>& challenge);

// ChapAuthenticator runs the target's side of one CHAP exchange.
class ChapAuthenticator {
 public:
  enum class Result { kContinue, kSuccess, kFailure };
  static constexpr size_t kChallengeLength = 16;

  explicit ChapAuthenticator(const ChapCredentials& credentials) : creds_(credentials) {}

  // Step consumes the CHAP keys of one login request and appends the answer keys. kContinue
  // means the exchange goes on (challenge sent); kSuccess the initiator (and, for mutual CHAP,
  // the target) is authenticated; kFailure sets *reason.
  Result Step(const TextKeys& request, TextKeys* response, std::string* reason);

  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kWaitAlgorithm, kWaitResponse, kDone };

  Result SendChallenge(const TextKeys& request, TextKeys* response, std::string* reason);
  Result CheckResponse(const TextKeys& request, TextKeys* response, std::string* reason);

  const ChapCredentials& creds_;
  State state_ = State::kWaitAlgorithm;
  uint8_t id_ = 0;
  std::vector<uint8_t> challenge_;
};

// RandomBytes fills out from OpenSSL's CSPRNG; false if it failed.
bool RandomBytes(uint8_t* out, size_t length);

}  // namespace vios::iscsi
