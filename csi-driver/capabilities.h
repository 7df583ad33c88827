// Volume capability checks shared by the controller and node services (CSI spec
// "VolumeCapability"). vios volumes are block devices: mount access (ext4, xfs) or raw block
// access, single-node access modes and multi-node read-only.
#pragma once

#include <string>
#include <vector>

#include "proto/csi.grpc.pb.h"

namespace vios::csi {

// kSupportedFsTypes are the filesystems the node plugin formats and mounts ("" = ext4).
inline const std::vector<std::string> kSupportedFsTypes = {"ext4", "xfs"};

// CheckCapability returns "" when cap is supported, else the reason it is not.
std::string CheckCapability(const ::csi::v1::VolumeCapability& cap);

// IsSingleNode says whether an access mode allows publishing to one node only.
bool IsSingleNode(::csi::v1::VolumeCapability::AccessMode::Mode mode);

// AccessModeName maps a CSI access mode to the VIOSVolume accessModes enum.
std::string AccessModeName(::csi::v1::VolumeCapability::AccessMode::Mode mode);

// VolumeModeOf is "Block" for block access, "Filesystem" otherwise.
std::string VolumeModeOf(const ::csi::v1::VolumeCapability& cap);

}  // namespace vios::csi
