#include "node-agent/app/port_store.h"

#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "common/util/atomic_file.h"

namespace vios::agent {

using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;

const json& Need(const json& j, const char* key, json::value_t type) {
  auto it = j.find(key);
  if (it == j.end() || it->type() != type) {
    // Unsigned and signed integers are interchangeable in JSON text.
    if (it != j.end() && type == json::value_t::number_unsigned && it->is_number_integer() &&
        it->get<int64_t>() >= 0) {
      return *it;
    }
    throw std::runtime_error(std::string("field '") + key + "' is missing or has the wrong type");
  }
  return *it;
}

std::string Str(const json& j, const char* key) {
  return Need(j, key, json::value_t::string).get<std::string>();
}

}  // namespace

json PortRequestToJson(const PortRequest& r) {
  json extents = json::array();
  for (const PortExtent& e : r.extents) {
    extents.push_back({{"backend", e.backend}, {"offset", e.offset}, {"length", e.length}});
  }
  return {{"name", r.name},
          {"volume", r.volume_id},
          {"pool", r.pool},
          {"extents", extents},
          {"sizeBytes", r.size_bytes},
          {"transport", r.transport == AttachTransport::kFuse ? "fuse" : "iscsi"},
          {"allowedInitiators", r.allowed_initiators},
          {"chapUser", r.chap_user},
          {"chapSecret", r.chap_secret},
          {"mutualUser", r.mutual_user},
          {"mutualSecret", r.mutual_secret},
          {"readOnly", r.read_only},
          {"owner", r.owner}};
}

PortRequest PortRequestFromJson(const json& j) {
  if (!j.is_object()) throw std::runtime_error("a port is not an object");
  PortRequest r;
  r.name = Str(j, "name");
  r.volume_id = Str(j, "volume");
  r.pool = Str(j, "pool");
  for (const json& e : Need(j, "extents", json::value_t::array)) {
    r.extents.push_back(PortExtent{
        Str(e, "backend"), Need(e, "offset", json::value_t::number_unsigned).get<uint64_t>(),
        Need(e, "length", json::value_t::number_unsigned).get<uint64_t>()});
  }
  r.size_bytes = Need(j, "sizeBytes", json::value_t::number_unsigned).get<uint64_t>();
  std::string transport = Str(j, "transport");
  if (transport != "fuse" && transport != "iscsi") {
    throw std::runtime_error("field 'transport' is '" + transport + "', not iscsi or fuse");
  }
  r.transport = transport == "fuse" ? AttachTransport::kFuse : AttachTransport::kIscsi;
  for (const json& initiator : Need(j, "allowedInitiators", json::value_t::array)) {
    if (!initiator.is_string()) throw std::runtime_error("allowedInitiators holds a non-string");
    r.allowed_initiators.push_back(initiator.get<std::string>());
  }
  r.chap_user = Str(j, "chapUser");
  r.chap_secret = Str(j, "chapSecret");
  r.mutual_user = Str(j, "mutualUser");
  r.mutual_secret = Str(j, "mutualSecret");
  r.read_only = Need(j, "readOnly", json::value_t::boolean).get<bool>();
  r.owner = Str(j, "owner");
  return r;
}

std::vector<PortRequest> PortStore::Load(std::string* error) const {
  std::optional<std::string> text = util::ReadFile(path_, error);
  if (!text) return {};
  std::vector<PortRequest> out;
  try {
    json doc = json::parse(*text);
    if (Need(doc, "version", json::value_t::number_unsigned).get<int>() != kFormatVersion) {
      throw std::runtime_error("unknown format version");
    }
    size_t index = 0;
    for (const json& port : Need(doc, "ports", json::value_t::array)) {
      try {
        out.push_back(PortRequestFromJson(port));
      } catch (const std::exception& e) {
        throw std::runtime_error("ports[" + std::to_string(index) + "]: " + e.what());
      }
      ++index;
    }
  } catch (const std::exception& e) {
    std::string aside = path_ + ".corrupt-" + std::to_string(std::time(nullptr));
    std::rename(path_.c_str(), aside.c_str());
    *error = path_ + " is corrupt (" + e.what() + "); moved to " + aside;
    return {};
  }
  return out;
}

bool PortStore::Save(const std::vector<PortRequest>& requests, std::string* error) const {
  json ports = json::array();
  for (const PortRequest& r : requests) ports.push_back(PortRequestToJson(r));
  json doc = {{"version", kFormatVersion}, {"ports", ports}};
  return util::WriteFileAtomically(path_, doc.dump(1) + "\n", 0600, error);
}

}  // namespace vios::agent
