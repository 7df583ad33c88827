// VolumeRecord: the controller's and node plugin's view of one VIOSVolume object (DESIGN.md §3),
// converted from and to the API server's JSON. The CSI name, attach transport and filesystem type
// are spec fields (csiName, transport, fsType); objects written before the schema had them carry
// them as annotations (names.h), which are still read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node-agent/pool/extent.h"

namespace vios::csi {

struct Attachment {
  std::string node;
  std::string iqn;  // virtualPortIQN
  bool read_only = false;
  std::string transport;
  std::string attached_time;
};

struct VolumeRecord {
  std::string id;  // metadata.name = CSI volume id
  std::string csi_name;
  std::string cluster;
  std::string pool;
  uint64_t size = 0;
  std::string volume_mode = "Filesystem";  // or Block
  std::vector<std::string> access_modes;
  std::vector<pool::Extent> extents;
  std::string transport = "fuse";
  std::string fs_type;
  std::string source_volume;  // spec.contentSource.volume: the volume this one was cloned from
  std::string phase;
  std::vector<Attachment> attachments;
  nlohmann::json object;  // as read, for updates with its resourceVersion

  // FromObject parses a VIOSVolume; nullopt (with error) when fields are malformed.
  static std::optional<VolumeRecord> FromObject(const nlohmann::json& obj, std::string* error);
  // NewObject renders a new VIOSVolume for Create.
  nlohmann::json NewObject(const std::string& ns) const;
  // WithSpec returns `object` with spec.size and spec.extents replaced by this record's.
  nlohmann::json WithSpec() const;
  // WithStatus returns `object` with status.phase and status.attachments from this record.
  nlohmann::json WithStatus() const;

  bool Published() const { return !attachments.empty(); }
  uint64_t ExtentBytes() const;
};

// ExtentsToJson / ExtentsFromJson convert VIOSVolume spec.extents.
nlohmann::json ExtentsToJson(const std::vector<pool::Extent>& extents);
std::optional<std::vector<pool::Extent>> ExtentsFromJson(const nlohmann::json& j,
                                                         std::string* error);

// NowRfc3339 is the current UTC time as the API server formats date-time fields.
std::string NowRfc3339();

}  // namespace vios::csi
