// Mounter: the node's block-device and mount operations (loop devices, blkid/mkfs, mount, bind
// mounts, filesystem growth), each one tool invocation through RunCommand. Every operation that
// undoes something is idempotent: unmounting what is not mounted, detaching a loop device that
// is gone, succeed.
#pragma once

#include <cstdint>
#include <string>

namespace vios::csi {

// IsMountPoint says whether path is a mount point (per /proc/self/mountinfo).
bool IsMountPoint(const std::string& path);
// MountSource returns the device mounted at path ("" if none).
std::string MountSource(const std::string& path);

// LoopAttach puts a loop device over file (direct I/O when the file allows it) and returns
// "/dev/loopN"; "" with error on failure.
std::string LoopAttach(const std::string& file, std::string* error);
// LoopDeviceFor returns the loop device currently backed by file, or "".
std::string LoopDeviceFor(const std::string& file);
// LoopDetach detaches device; true if it is gone afterwards.
bool LoopDetach(const std::string& device, std::string* error);
// LoopRefresh makes the loop device pick up its backing file's new size (losetup -c).
bool LoopRefresh(const std::string& device, std::string* error);

// FsTypeOf returns the filesystem signature on device ("" for blank); false on blkid errors.
bool FsTypeOf(const std::string& device, std::string* fs_type, std::string* error);
// FormatIfBlank runs mkfs.<fs_type> on device when it holds no signature; a different existing
// filesystem is an error (never reformat data).
bool FormatIfBlank(const std::string& device, const std::string& fs_type, std::string* error);
// Mount mounts device at dir (created) with fs_type and comma-separated options.
bool Mount(const std::string& device, const std::string& dir, const std::string& fs_type,
           const std::string& options, std::string* error);
// BindMount binds source onto target (a dir or a file that exists), read-only if asked.
bool BindMount(const std::string& source, const std::string& target, bool read_only,
               std::string* error);
// Unmount unmounts path if it is a mount point (repeatedly, for stacked mounts).
bool Unmount(const std::string& path, std::string* error);
// GrowFilesystem grows the filesystem mounted at mount_path on device to the device size.
bool GrowFilesystem(const std::string& device, const std::string& mount_path, std::string* error);
// DeviceSizeBytes returns the size of a block device (BLKGETSIZE64), 0 on error.
uint64_t DeviceSizeBytes(const std::string& device);

}  // namespace vios::csi
