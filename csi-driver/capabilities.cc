// Volume capability checks (see capabilities.h).
#include "csi-driver/capabilities.h"

#include <algorithm>

namespace vios::csi {

using Mode = ::csi::v1::VolumeCapability::AccessMode::Mode;

bool IsSingleNode(Mode mode) {
  return mode == ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER ||
         mode == ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY ||
         mode == ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_SINGLE_WRITER ||
         mode == ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER;
}

std::string AccessModeName(Mode mode) {
  switch (mode) {
    case ::csi::v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY:
      return "ReadOnlyMany";
    case ::csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER:
      return "ReadWriteMany";
    case ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_SINGLE_WRITER:
      return "ReadWriteOncePod";
    default:
      return "ReadWriteOnce";
  }
}

std::string VolumeModeOf(const ::csi::v1::VolumeCapability& cap) {
  return cap.has_block() ? "Block" : "Filesystem";
}

std::string CheckCapability(const ::csi::v1::VolumeCapability& cap) {
  if (!cap.has_mount() && !cap.has_block()) {
    return "volume capability has neither mount nor block access type";
  }
  if (cap.has_mount()) {
    const std::string& fs = cap.mount().fs_type();
    if (!fs.empty() && std::find(kSupportedFsTypes.begin(), kSupportedFsTypes.end(), fs) ==
                           kSupportedFsTypes.end()) {
      return "fs_type '" + fs + "' is not supported (ext4, xfs)";
    }
  }
  if (!cap.has_access_mode()) return "volume capability has no access mode";
  switch (cap.access_mode().mode()) {
    case ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER:
    case ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY:
    case ::csi::v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY:
      return "";
    case ::csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER:
      // A filesystem on a shared block device written from two nodes corrupts it; raw block
      // sharing is a clustered application's business (SCSI reservations need iscsi).
      if (cap.has_block()) return "";
      return "access mode MULTI_NODE_MULTI_WRITER is supported for block access only";
    default:
      return "access mode " +
             ::csi::v1::VolumeCapability::AccessMode::Mode_Name(cap.access_mode().mode()) +
             " is not supported";
  }
}

}  // namespace vios::csi
