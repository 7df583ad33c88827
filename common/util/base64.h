// Base64 (RFC 4648 §4, standard alphabet, padded) for Secret data and kubeconfig *-data fields.
//
//   std::string text = util::Base64Encode(bytes);
//   std::optional<std::string> bytes = util::Base64Decode(text);   // nullopt when malformed
#pragma once

#include <optional>
#include <string>

namespace vios::util {

std::string Base64Encode(const std::string& data);
// Base64Decode ignores ASCII whitespace (PEM-style line breaks) and requires correct padding.
std::optional<std::string> Base64Decode(const std::string& text);

}  // namespace vios::util
