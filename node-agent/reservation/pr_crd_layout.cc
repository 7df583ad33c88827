// The VIOSVolume.status.reservation layout of PrState, and the update peers exchange.
#include "node-agent/reservation/pr_crd_layout.h"

#include <charconv>
#include <cstdio>

namespace vios::reservation {
namespace {

using nlohmann::json;

bool ParseHex64(std::string_view text, size_t digits, uint64_t* out) {
  if (text.size() != digits) {
    return false;
  }
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

std::optional<PrType> TypeFromName(const std::string& name) {
  for (uint8_t code = 1; code <= 8; ++code) {
    if (IsValidType(code) && TypeName(static_cast<PrType>(code)) == name) {
      return static_cast<PrType>(code);
    }
  }
  return std::nullopt;
}

// OptionalPort reads a port string field: absent, null or "" are "no port".
bool OptionalPort(const json& j, const char* field, std::optional<PrPort>* out,
                  std::string* error) {
  out->reset();
  if (!j.contains(field) || j[field].is_null()) {
    return true;
  }
  if (!j[field].is_string()) {
    *error = std::string(field) + " must be a string";
    return false;
  }
  const std::string text = j[field].get<std::string>();
  if (text.empty()) {
    return true;
  }
  *out = PortFromKey(text);
  if (!out->has_value()) {
    *error = std::string(field) + ": malformed port \"" + text + "\"";
    return false;
  }
  return true;
}

}  // namespace

std::string PortKey(const PrPort& port) {
  return port.InitiatorPort() + "|" + port.targetPort + "|" +
         std::to_string(port.relativeTargetPort);
}

std::optional<PrPort> PortFromKey(const std::string& key) {
  // Parse from the right: "<name>,i,0x<12 hex>|<target port>|<rtp>".
  const size_t last = key.rfind('|');
  if (last == std::string::npos || last == 0) {
    return std::nullopt;
  }
  const size_t middle = key.rfind('|', last - 1);
  if (middle == std::string::npos) {
    return std::nullopt;
  }
  PrPort port;
  const std::string_view rtp_text = std::string_view(key).substr(last + 1);
  unsigned rtp = 0;
  const auto [end, ec] =
      std::from_chars(rtp_text.data(), rtp_text.data() + rtp_text.size(), rtp, 10);
  if (rtp_text.empty() || ec != std::errc() || end != rtp_text.data() + rtp_text.size() ||
      rtp > 0xFFFF) {
    return std::nullopt;
  }
  port.relativeTargetPort = static_cast<uint16_t>(rtp);
  port.targetPort = key.substr(middle + 1, last - middle - 1);
  const std::string initiator = key.substr(0, middle);
  const size_t marker = initiator.rfind(",i,0x");
  if (port.targetPort.empty() || marker == std::string::npos || marker == 0) {
    return std::nullopt;
  }
  uint64_t isid = 0;
  if (!ParseHex64(std::string_view(initiator).substr(marker + 5), 12, &isid)) {
    return std::nullopt;
  }
  port.initiatorName = initiator.substr(0, marker);
  for (int i = 5; i >= 0; --i) {
    port.isid[static_cast<size_t>(i)] = static_cast<uint8_t>(isid);
    isid >>= 8;
  }
  return port;
}

json ToCrdJson(const PrState& state) {
  json registrations = json::array();
  for (const Registration& r : state.registrations) {
    char key[17];
    std::snprintf(key, sizeof(key), "%016llx", static_cast<unsigned long long>(r.key));
    registrations.push_back({{"port", PortKey(r.port)}, {"key", key}});
  }
  // Absent fields are written as null: in a merge patch null deletes the stored field.
  json j{{"generation", state.generation},
         {"aptpl", state.aptpl},
         {"registrations", std::move(registrations)},
         {"type", nullptr},
         {"holder", nullptr},
         {"spc2Holder", nullptr}};
  if (state.Reserved()) {
    j["type"] = TypeName(state.type);
    // The CRD requires a holder with a type; "" means every registrant (SPC-4 §5.13.10.3.5).
    j["holder"] = state.holder.has_value() ? PortKey(*state.holder) : std::string();
  }
  if (state.spc2Holder.has_value()) {
    j["spc2Holder"] = PortKey(*state.spc2Holder);
  }
  return j;
}

std::optional<PrState> PrStateFromCrdJson(const json& j, std::string* error) {
  PrState state;
  if (j.is_null()) {
    return state;
  }
  if (!j.is_object()) {
    *error = "status.reservation must be an object";
    return std::nullopt;
  }
  if (j.contains("generation")) {
    // Signed or unsigned JSON integer (parsers differ), 0..2^32-1.
    if (!j["generation"].is_number_integer() || j["generation"].get<int64_t>() < 0 ||
        j["generation"].get<int64_t>() > 0xFFFFFFFFll) {
      *error = "generation must be 0..4294967295";
      return std::nullopt;
    }
    state.generation = static_cast<uint32_t>(j["generation"].get<uint64_t>());
  }
  if (j.contains("aptpl") && !j["aptpl"].is_null()) {
    if (!j["aptpl"].is_boolean()) {
      *error = "aptpl must be a boolean";
      return std::nullopt;
    }
    state.aptpl = j["aptpl"].get<bool>();
  }
  if (j.contains("registrations") && !j["registrations"].is_null()) {
    const json& regs = j["registrations"];
    if (!regs.is_array() || regs.size() > kMaxRegistrations) {
      *error = "registrations must be an array of at most " + std::to_string(kMaxRegistrations);
      return std::nullopt;
    }
    for (const json& r : regs) {
      if (!r.is_object() || !r.contains("port") || !r["port"].is_string() || !r.contains("key") ||
          !r["key"].is_string()) {
        *error = "a registration needs string port and key";
        return std::nullopt;
      }
      Registration reg;
      std::optional<PrPort> port = PortFromKey(r["port"].get<std::string>());
      if (!port.has_value() || !ParseHex64(r["key"].get<std::string>(), 16, &reg.key)) {
        *error = "malformed registration " + r.dump();
        return std::nullopt;
      }
      reg.port = std::move(*port);
      state.registrations.push_back(std::move(reg));
    }
  }
  if (j.contains("type") && !j["type"].is_null()) {
    std::optional<PrType> type =
        j["type"].is_string() ? TypeFromName(j["type"].get<std::string>()) : std::nullopt;
    if (!type.has_value()) {
      *error = "unknown reservation type " + j["type"].dump();
      return std::nullopt;
    }
    state.type = *type;
  }
  if (!OptionalPort(j, "holder", &state.holder, error) ||
      !OptionalPort(j, "spc2Holder", &state.spc2Holder, error)) {
    return std::nullopt;
  }
  if (state.Reserved() && !IsAllRegistrantsType(state.type) && !state.holder.has_value()) {
    *error = "reservation type " + TypeName(state.type) + " without a holder";
    return std::nullopt;
  }
  if (IsAllRegistrantsType(state.type)) {
    state.holder.reset();  // PrEngine keeps no holder for the all-registrants types.
  }
  if (!state.Reserved()) {
    state.holder.reset();
  }
  return state;
}

std::optional<uint64_t> ParseResourceVersion(const json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object() ||
      !object["metadata"].contains("resourceVersion") ||
      !object["metadata"]["resourceVersion"].is_string()) {
    return std::nullopt;
  }
  const std::string text = object["metadata"]["resourceVersion"].get<std::string>();
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 10);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v == 0) {
    return std::nullopt;
  }
  return v;
}

std::string EncodeUpdate(const PrUpdate& update) {
  json uas = json::array();
  for (const PrUnitAttention& ua : update.unit_attentions) {
    uas.push_back({{"port", PortKey(ua.port)}, {"asc", ua.asc.asc}, {"ascq", ua.asc.ascq}});
  }
  json aborted = json::array();
  for (const PrPort& port : update.aborted) {
    aborted.push_back(PortKey(port));
  }
  return json{{"reservation", ToCrdJson(update.state)},
              {"unitAttentions", std::move(uas)},
              {"aborted", std::move(aborted)}}
      .dump();
}

std::optional<PrUpdate> DecodeUpdate(const std::string& text, std::string* error) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("reservation")) {
    *error = "reservation update is not a JSON object with a reservation";
    return std::nullopt;
  }
  std::optional<PrState> state = PrStateFromCrdJson(j["reservation"], error);
  if (!state.has_value()) {
    return std::nullopt;
  }
  PrUpdate update;
  update.state = std::move(*state);
  if (j.contains("unitAttentions")) {
    if (!j["unitAttentions"].is_array()) {
      *error = "unitAttentions must be an array";
      return std::nullopt;
    }
    for (const json& ua : j["unitAttentions"]) {
      std::optional<PrPort> port;
      if (ua.is_object() && ua.contains("port") && ua["port"].is_string()) {
        port = PortFromKey(ua["port"].get<std::string>());
      }
      if (!port.has_value() || !ua.contains("asc") || !ua["asc"].is_number_unsigned() ||
          ua["asc"].get<uint64_t>() > 0xFF || !ua.contains("ascq") ||
          !ua["ascq"].is_number_unsigned() || ua["ascq"].get<uint64_t>() > 0xFF) {
        *error = "malformed unit attention " + ua.dump();
        return std::nullopt;
      }
      update.unit_attentions.push_back(
          {std::move(*port), scsi::Asc{static_cast<uint8_t>(ua["asc"].get<uint64_t>()),
                                       static_cast<uint8_t>(ua["ascq"].get<uint64_t>())}});
    }
  }
  if (j.contains("aborted")) {
    if (!j["aborted"].is_array()) {
      *error = "aborted must be an array";
      return std::nullopt;
    }
    for (const json& a : j["aborted"]) {
      std::optional<PrPort> port = a.is_string() ? PortFromKey(a.get<std::string>()) : std::nullopt;
      if (!port.has_value()) {
        *error = "malformed aborted port " + a.dump();
        return std::nullopt;
      }
      update.aborted.push_back(std::move(*port));
    }
  }
  return update;
}

}  // namespace vios::reservation
