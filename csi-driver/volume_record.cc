// VIOSVolume JSON <-> VolumeRecord (see volume_record.h).
#include "csi-driver/volume_record.h"

#include <ctime>

#include "common/util/quantity.h"
#include "csi-driver/names.h"

namespace vios::csi {

nlohmann::json ExtentsToJson(const std::vector<pool::Extent>& extents) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : extents) {
    out.push_back({{"backend", e.backend}, {"offset", e.offset}, {"length", e.length}});
  }
  return out;
}

std::optional<std::vector<pool::Extent>> ExtentsFromJson(const nlohmann::json& j,
                                                         std::string* error) {
  std::vector<pool::Extent> out;
  if (j.is_null()) return out;
  if (!j.is_array()) {
    *error = "extents is not a list";
    return std::nullopt;
  }
  for (const auto& e : j) {
    if (!e.is_object() || !e.value("backend", nlohmann::json()).is_string() ||
        !e.value("offset", nlohmann::json()).is_number_integer() ||
        !e.value("length", nlohmann::json()).is_number_integer() ||
        e["offset"].get<int64_t>() < 0 || e["length"].get<int64_t>() <= 0) {
      *error = "malformed extent " + e.dump();
      return std::nullopt;
    }
    out.push_back({e["backend"].get<std::string>(), e["offset"].get<uint64_t>(),
                   e["length"].get<uint64_t>()});
  }
  return out;
}

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

uint64_t VolumeRecord::ExtentBytes() const {
  uint64_t total = 0;
  for (const auto& e : extents) total += e.length;
  return total;
}

std::optional<VolumeRecord> VolumeRecord::FromObject(const nlohmann::json& obj,
                                                     std::string* error) {
  try {
    VolumeRecord r;
    r.object = obj;
    const auto& meta = obj.at("metadata");
    r.id = meta.at("name").get<std::string>();
    const auto& spec = obj.at("spec");
    // spec.csiName/transport/fsType since the schema has them; volumes created before that carry
    // them as annotations.
    auto annotations = meta.value("annotations", nlohmann::json::object());
    r.csi_name = spec.value("csiName", annotations.value(kAnnotationCsiName, r.id));
    r.transport = spec.value("transport", annotations.value(kAnnotationTransport, "fuse"));
    r.fs_type = spec.value("fsType", annotations.value(kAnnotationFsType, ""));
    r.source_volume =
        spec.value("contentSource", nlohmann::json::object()).value("volume", std::string());
    r.cluster = spec.value("cluster", "");
    r.pool = spec.value("pool", "");
    auto size = util::ParseByteQuantity(spec.value("size", ""));
    if (!size) {
      *error = "VIOSVolume " + r.id + ": spec.size is not a byte quantity";
      return std::nullopt;
    }
    r.size = *size;
    r.volume_mode = spec.value("volumeMode", "Filesystem");
    for (const auto& m : spec.value("accessModes", nlohmann::json::array())) {
      r.access_modes.push_back(m.get<std::string>());
    }
    auto extents = ExtentsFromJson(spec.value("extents", nlohmann::json()), error);
    if (!extents) {
      *error = "VIOSVolume " + r.id + ": " + *error;
      return std::nullopt;
    }
    r.extents = std::move(*extents);
    auto status = obj.value("status", nlohmann::json::object());
    r.phase = status.value("phase", "");
    for (const auto& a : status.value("attachments", nlohmann::json::array())) {
      Attachment at;
      at.node = a.value("node", "");
      at.iqn = a.value("virtualPortIQN", "");
      at.read_only = a.value("readOnly",
                             at.iqn.size() > 3 && at.iqn.compare(at.iqn.size() - 3, 3, ":ro") == 0);
      at.transport = a.value("transport", "");
      at.attached_time = a.value("attachedTime", "");
      r.attachments.push_back(std::move(at));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    *error = std::string("malformed VIOSVolume: ") + e.what();
    return std::nullopt;
  }
}

nlohmann::json VolumeRecord::NewObject(const std::string& ns) const {
  nlohmann::json modes = access_modes;
  nlohmann::json spec = {{"cluster", cluster},           {"pool", pool},
                         {"csiName", csi_name},          {"transport", transport},
                         {"size", std::to_string(size)}, {"volumeMode", volume_mode},
                         {"accessModes", modes},         {"extents", ExtentsToJson(extents)}};
  if (!fs_type.empty()) spec["fsType"] = fs_type;
  if (!source_volume.empty()) spec["contentSource"] = {{"volume", source_volume}};
  return {{"apiVersion", "vios.dev/v1alpha1"},
          {"kind", "VIOSVolume"},
          {"metadata",
           {{"name", id},
            {"namespace", ns},
            {"labels", {{"vios.dev/cluster", cluster}, {"vios.dev/pool", pool}}}}},
          {"spec", spec}};
}

nlohmann::json VolumeRecord::WithSpec() const {
  nlohmann::json obj = object;
  obj["spec"]["size"] = std::to_string(size);
  obj["spec"]["extents"] = ExtentsToJson(extents);
  return obj;
}

nlohmann::json VolumeRecord::WithStatus() const {
  nlohmann::json obj = object;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& a : attachments) {
    nlohmann::json item = {{"node", a.node}, {"virtualPortIQN", a.iqn}, {"readOnly", a.read_only}};
    if (!a.transport.empty()) item["transport"] = a.transport;
    if (!a.attached_time.empty()) item["attachedTime"] = a.attached_time;
    list.push_back(std::move(item));
  }
  obj["status"]["attachments"] = list;
  if (!phase.empty()) obj["status"]["phase"] = phase;
  return obj;
}

}  // namespace vios::csi
