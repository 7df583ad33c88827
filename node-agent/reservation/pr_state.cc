// PrState helpers and its JSON form (VIOSVolume.status.reservation).
#include "node-agent/reservation/pr_state.h"

#include <cstdio>
#include <cstdlib>

namespace vios::reservation {
namespace {

struct TypeNameEntry {
  PrType type;
  const char* name;
};
constexpr TypeNameEntry kTypeNames[] = {
    {PrType::kWriteExclusive, "WriteExclusive"},
    {PrType::kExclusiveAccess, "ExclusiveAccess"},
    {PrType::kWriteExclusiveRegistrantsOnly, "WriteExclusiveRegistrantsOnly"},
    {PrType::kExclusiveAccessRegistrantsOnly, "ExclusiveAccessRegistrantsOnly"},
    {PrType::kWriteExclusiveAllRegistrants, "WriteExclusiveAllRegistrants"},
    {PrType::kExclusiveAccessAllRegistrants, "ExclusiveAccessAllRegistrants"},
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool ParseHex(const std::string& text, size_t max_digits, uint64_t* out) {
  std::string_view s = text;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
  }
  if (s.empty() || s.size() > max_digits) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    const int d = HexDigit(c);
    if (d < 0) {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

std::optional<PrPort> PortFromJson(const nlohmann::json& j, std::string* error) {
  if (!j.is_object() || !j.contains("initiatorName") || !j["initiatorName"].is_string() ||
      !j.contains("isid") || !j["isid"].is_string() || !j.contains("targetPort") ||
      !j["targetPort"].is_string()) {
    *error = "port needs string initiatorName, isid and targetPort";
    return std::nullopt;
  }
  PrPort port;
  port.initiatorName = j["initiatorName"].get<std::string>();
  port.targetPort = j["targetPort"].get<std::string>();
  uint64_t isid = 0;
  const std::string isid_text = j["isid"].get<std::string>();
  if (isid_text.size() != 12 || !ParseHex(isid_text, 12, &isid)) {
    *error = "isid must be 12 hex digits";
    return std::nullopt;
  }
  for (int i = 5; i >= 0; --i) {
    port.isid[static_cast<size_t>(i)] = static_cast<uint8_t>(isid);
    isid >>= 8;
  }
  if (j.contains("relativeTargetPort")) {
    if (!j["relativeTargetPort"].is_number_unsigned() ||
        j["relativeTargetPort"].get<uint64_t>() > 0xFFFF) {
      *error = "relativeTargetPort must be 0..65535";
      return std::nullopt;
    }
    port.relativeTargetPort = static_cast<uint16_t>(j["relativeTargetPort"].get<uint64_t>());
  }
  return port;
}

}  // namespace

bool IsValidType(uint8_t type) {
  for (const TypeNameEntry& e : kTypeNames) {
    if (static_cast<uint8_t>(e.type) == type) {
      return true;
    }
  }
  return false;
}

bool IsAllRegistrantsType(PrType type) {
  return type == PrType::kWriteExclusiveAllRegistrants ||
         type == PrType::kExclusiveAccessAllRegistrants;
}

bool IsRegistrantsOnlyType(PrType type) {
  return type == PrType::kWriteExclusiveRegistrantsOnly ||
         type == PrType::kExclusiveAccessRegistrantsOnly;
}

bool IsExclusiveAccessFamily(PrType type) {
  return type == PrType::kExclusiveAccess || type == PrType::kExclusiveAccessRegistrantsOnly ||
         type == PrType::kExclusiveAccessAllRegistrants;
}

std::string TypeName(PrType type) {
  for (const TypeNameEntry& e : kTypeNames) {
    if (e.type == type) {
      return e.name;
    }
  }
  return "None";
}

std::string FormatKey(uint64_t key) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(key));
  return buf;
}

std::string FormatIsid(const std::array<uint8_t, 6>& isid) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(12);
  for (uint8_t b : isid) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

std::string PrPort::InitiatorPort() const { return initiatorName + ",i,0x" + FormatIsid(isid); }

bool PrPort::Matches(const scsi::Nexus& nexus) const {
  return nexus.initiator_name == initiatorName && nexus.isid == isid &&
         nexus.target_port == targetPort;
}

PrPort PrPort::FromNexus(const scsi::Nexus& nexus) {
  PrPort port;
  port.initiatorName = nexus.initiator_name;
  port.isid = nexus.isid;
  port.targetPort = nexus.target_port;
  port.relativeTargetPort = nexus.relative_target_port;
  return port;
}

const Registration* PrState::Find(const scsi::Nexus& nexus) const {
  for (const Registration& r : registrations) {
    if (r.port.Matches(nexus)) {
      return &r;
    }
  }
  return nullptr;
}

Registration* PrState::Find(const scsi::Nexus& nexus) {
  for (Registration& r : registrations) {
    if (r.port.Matches(nexus)) {
      return &r;
    }
  }
  return nullptr;
}

bool PrState::IsHolder(const scsi::Nexus& nexus) const {
  if (!Reserved()) {
    return false;
  }
  if (IsAllRegistrantsType(type)) {
    return Find(nexus) != nullptr;
  }
  return holder.has_value() && holder->Matches(nexus);
}

nlohmann::json ToJson(const PrPort& port) {
  return nlohmann::json{{"initiatorName", port.initiatorName},
                        {"isid", FormatIsid(port.isid)},
                        {"targetPort", port.targetPort},
                        {"relativeTargetPort", port.relativeTargetPort}};
}

nlohmann::json ToJson(const PrState& state) {
  nlohmann::json j;
  j["generation"] = state.generation;
  j["aptpl"] = state.aptpl;
  nlohmann::json regs = nlohmann::json::array();
  for (const Registration& r : state.registrations) {
    nlohmann::json e = ToJson(r.port);
    e["key"] = FormatKey(r.key);
    regs.push_back(std::move(e));
  }
  j["registrations"] = std::move(regs);
  if (state.Reserved()) {
    nlohmann::json res{{"type", TypeName(state.type)},
                       {"allRegistrants", IsAllRegistrantsType(state.type)}};
    if (state.holder.has_value()) {
      res["holder"] = ToJson(*state.holder);
    }
    j["reservation"] = std::move(res);
  }
  if (state.spc2Holder.has_value()) {
    j["spc2Holder"] = ToJson(*state.spc2Holder);
  }
  return j;
}

std::optional<PrState> PrStateFromJson(const nlohmann::json& j, std::string* error) {
  std::string scratch;
  if (error == nullptr) {
    error = &scratch;
  }
  if (!j.is_object()) {
    *error = "reservation state must be an object";
    return std::nullopt;
  }
  PrState state;
  if (j.contains("generation")) {
    if (!j["generation"].is_number_unsigned() || j["generation"].get<uint64_t>() > 0xFFFFFFFFu) {
      *error = "generation must be a 32-bit unsigned number";
      return std::nullopt;
    }
    state.generation = static_cast<uint32_t>(j["generation"].get<uint64_t>());
  }
  if (j.contains("aptpl")) {
    if (!j["aptpl"].is_boolean()) {
      *error = "aptpl must be a boolean";
      return std::nullopt;
    }
    state.aptpl = j["aptpl"].get<bool>();
  }
  if (j.contains("registrations")) {
    if (!j["registrations"].is_array()) {
      *error = "registrations must be an array";
      return std::nullopt;
    }
    for (const nlohmann::json& e : j["registrations"]) {
      std::optional<PrPort> port = PortFromJson(e, error);
      if (!port.has_value()) {
        return std::nullopt;
      }
      uint64_t key = 0;
      if (!e.contains("key") || !e["key"].is_string() ||
          !ParseHex(e["key"].get<std::string>(), 16, &key) || key == 0) {
        *error = "registration key must be a nonzero hex string";
        return std::nullopt;
      }
      for (const Registration& r : state.registrations) {
        if (r.port == *port) {
          *error = "duplicate registration for " + port->InitiatorPort();
          return std::nullopt;
        }
      }
      state.registrations.push_back(Registration{std::move(*port), key});
    }
  }
  if (j.contains("reservation") && !j["reservation"].is_null()) {
    const nlohmann::json& res = j["reservation"];
    if (!res.is_object() || !res.contains("type") || !res["type"].is_string()) {
      *error = "reservation needs a type";
      return std::nullopt;
    }
    const std::string name = res["type"].get<std::string>();
    for (const TypeNameEntry& e : kTypeNames) {
      if (name == e.name) {
        state.type = e.type;
      }
    }
    if (state.type == PrType::kNone) {
      *error = "unknown reservation type " + name;
      return std::nullopt;
    }
    if (IsAllRegistrantsType(state.type)) {
      if (state.registrations.empty()) {
        *error = "all-registrants reservation without registrations";
        return std::nullopt;
      }
    } else {
      if (!res.contains("holder")) {
        *error = "reservation of type " + name + " needs a holder";
        return std::nullopt;
      }
      state.holder = PortFromJson(res["holder"], error);
      if (!state.holder.has_value()) {
        return std::nullopt;
      }
      bool registered = false;
      for (const Registration& r : state.registrations) {
        registered = registered || r.port == *state.holder;
      }
      if (!registered) {
        *error = "reservation holder is not registered";
        return std::nullopt;
      }
    }
  }
  if (j.contains("spc2Holder") && !j["spc2Holder"].is_null()) {
    state.spc2Holder = PortFromJson(j["spc2Holder"], error);
    if (!state.spc2Holder.has_value()) {
      return std::nullopt;
    }
  }
  return state;
}

}  // namespace vios::reservation
