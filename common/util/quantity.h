// Kubernetes-style byte quantities ("64Mi", "10Gi", "1G", "4096") for configuration files and
// custom resources.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vios::util {

// ParseByteQuantity accepts a non-negative integer with an optional binary (Ki, Mi, Gi, Ti, Pi) or
// decimal (k, M, G, T, P) suffix. Returns nullopt for anything else, fractions, or overflow.
std::optional<uint64_t> ParseByteQuantity(std::string_view text);

// FormatByteQuantity renders bytes with the largest binary suffix that divides it exactly.
std::string FormatByteQuantity(uint64_t bytes);

}  // namespace vios::util
