// Derived names of the CSI driver (see names.h).
#include "csi-driver/names.h"

#include <cstdio>

namespace vios::csi {

uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {
std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::string DnsLabel(std::string_view text, size_t max_len) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out.push_back(c);
    } else {
      out.push_back('-');
    }
  }
  if (out.size() > max_len) out.resize(max_len);
  while (!out.empty() && out.back() == '-') out.pop_back();
  size_t start = out.find_first_not_of('-');
  out = start == std::string::npos ? std::string() : out.substr(start);
  return out.empty() ? "x" : out;
}

std::string VolumeObjectName(std::string_view csi_name) {
  // 36 + 1 + 16 = 53 characters at most; the hash keeps distinct names distinct after the
  // readable prefix has been cut and sanitized.
  return DnsLabel(csi_name, 36) + "-" + Hex16(Fnv1a64(csi_name));
}

std::string PortName(std::string_view volume_id, std::string_view node_id) {
  return std::string(volume_id) + "." + DnsLabel(node_id, 63);
}

std::string InitiatorName(std::string_view node_id, std::string_view port_name) {
  return std::string(kIqnPrefix) + ".initiator:" + DnsLabel(node_id, 63) + ":" +
         std::string(port_name);
}

std::string AllocationConfigMapName(std::string_view cluster, std::string_view pool) {
  std::string both = std::string(cluster) + "/" + std::string(pool);
  return "vios-alloc-" + DnsLabel(std::string(cluster) + "-" + std::string(pool), 30) + "-" +
         Hex16(Fnv1a64(both)).substr(0, 8);
}

std::string AttachmentIqn(std::string_view volume_id, std::string_view node_id, bool read_only) {
  std::string iqn =
      std::string(kIqnPrefix) + ":" + std::string(volume_id) + ":" + DnsLabel(node_id, 63);
  if (read_only) iqn += ":ro";
  return iqn;
}

std::string MakePageToken(std::string_view last_volume_id) {
  return "after:" + std::string(last_volume_id);
}

std::optional<std::string> ParsePageToken(std::string_view token) {
  constexpr std::string_view kPrefix = "after:";
  if (token.substr(0, kPrefix.size()) != kPrefix || token.size() == kPrefix.size()) {
    return std::nullopt;
  }
  return std::string(token.substr(kPrefix.size()));
}

}  // namespace vios::csi
