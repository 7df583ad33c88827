// Mounter (see mounter.h).
#include "csi-driver/mounter.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "csi-driver/command.h"

namespace vios::csi {
namespace {

// Unescape undoes mountinfo's octal escapes (\040 for space).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

// MountEntry finds the last mountinfo line whose mount point is path; returns the source.
bool FindMount(const std::string& path, std::string* source) {
  std::error_code ec;
  std::string want = std::filesystem::weakly_canonical(path, ec).string();
  if (ec) want = path;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (Unescape(mount_point) != want) continue;
    found = true;
    auto dash = line.find(" - ");
    if (dash != std::string::npos) {
      std::istringstream rest(line.substr(dash + 3));
      std::string fstype, src;
      rest >> fstype >> src;
      *source = Unescape(src);
    }
  }
  return found;
}

bool Run(const std::vector<std::string>& argv, std::string* error, CommandResult* out = nullptr) {
  CommandResult r = RunCommand(argv);
  if (out) *out = r;
  if (!r.ok()) {
    *error = Describe(argv, r);
    return false;
  }
  return true;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool IsMountPoint(const std::string& path) {
  std::string source;
  return FindMount(path, &source);
}

std::string MountSource(const std::string& path) {
  std::string source;
  return FindMount(path, &source) ? source : "";
}

std::string LoopAttach(const std::string& file, std::string* error) {
  if (std::string existing = LoopDeviceFor(file); !existing.empty()) return existing;
  CommandResult r;
  // Direct I/O keeps the page cache out of the way (the agent already caches); FUSE files
  // without direct-I/O support fall back to buffered loop I/O.
  if (!Run({"losetup", "--find", "--show", "--direct-io=on", file}, error, &r)) {
    if (!Run({"losetup", "--find", "--show", file}, error, &r)) return "";
  }
  return Trim(r.output);
}

std::string LoopDeviceFor(const std::string& file) {
  CommandResult r = RunCommand({"losetup", "--noheadings", "--output", "NAME", "-j", file});
  if (!r.ok()) return "";
  std::istringstream in(r.output);
  std::string first;
  in >> first;
  return first;
}

bool LoopDetach(const std::string& device, std::string* error) {
  if (device.empty() || !std::filesystem::exists(device)) return true;
  CommandResult r = RunCommand({"losetup", "-d", device});
  if (r.ok()) return true;
  // Already detached (ENXIO) counts as success.
  CommandResult check = RunCommand({"losetup", device});
  if (!check.ok()) return true;
  *error = Describe({"losetup", "-d", device}, r);
  return false;
}

bool LoopRefresh(const std::string& device, std::string* error) {
  return Run({"losetup", "-c", device}, error);
}

bool FsTypeOf(const std::string& device, std::string* fs_type, std::string* error) {
  CommandResult r = RunCommand({"blkid", "-p", "-s", "TYPE", "-o", "value", device});
  if (r.exit_code == 2) {  // blkid: no signature found
    fs_type->clear();
    return true;
  }
  if (!r.ok()) {
    *error = Describe({"blkid", "-p", device}, r);
    return false;
  }
  *fs_type = Trim(r.output);
  return true;
}

bool FormatIfBlank(const std::string& device, const std::string& fs_type, std::string* error) {
  std::string existing;
  if (!FsTypeOf(device, &existing, error)) return false;
  if (existing == fs_type) return true;
  if (!existing.empty()) {
    *error = device + " holds a " + existing + " filesystem, not " + fs_type + "; not reformatting";
    return false;
  }
  if (fs_type == "xfs") return Run({"mkfs.xfs", "-q", "-f", device}, error);
  return Run({"mkfs.ext4", "-q", "-F", "-m", "0", device}, error);
}

bool Mount(const std::string& device, const std::string& dir, const std::string& fs_type,
           const std::string& options, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (IsMountPoint(dir)) return true;
  std::vector<std::string> argv = {"mount", "-t", fs_type};
  if (!options.empty()) {
    argv.push_back("-o");
    argv.push_back(options);
  }
  argv.push_back(device);
  argv.push_back(dir);
  return Run(argv, error);
}

bool BindMount(const std::string& source, const std::string& target, bool read_only,
               std::string* error) {
  if (!IsMountPoint(target) && !Run({"mount", "--bind", source, target}, error)) return false;
  if (read_only) return Run({"mount", "-o", "remount,bind,ro", target}, error);
  return true;
}

bool Unmount(const std::string& path, std::string* error) {
  for (int i = 0; i < 8 && IsMountPoint(path); ++i) {
    if (!Run({"umount", path}, error)) return false;
  }
  return true;
}

bool GrowFilesystem(const std::string& device, const std::string& mount_path, std::string* error) {
  std::string fs;
  if (!FsTypeOf(device, &fs, error)) return false;
  if (fs == "xfs") return Run({"xfs_growfs", mount_path}, error);
  if (fs == "ext4" || fs == "ext3" || fs == "ext2") return Run({"resize2fs", device}, error);
  if (fs.empty()) return true;  // raw block: nothing to grow
  *error = "cannot grow a " + fs + " filesystem";
  return false;
}

uint64_t DeviceSizeBytes(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) size = 0;
  ::close(fd);
  return size;
}

}  // namespace vios::csi
