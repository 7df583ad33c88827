// Command: runs the node's tools (losetup, mkfs, mount, blkid, iscsiadm, resize2fs) without a
// shell, so no argument is ever interpreted by one. Found through PATH, which is how tests put a
// recording iscsiadm stand-in in front of the real one.
#pragma once

#include <string>
#include <vector>

namespace vios::csi {

struct CommandResult {
  int exit_code = -1;  // -1: could not start or killed by a signal
  std::string output;  // stdout and stderr, interleaved
  bool ok() const { return exit_code == 0; }
};

// RunCommand runs argv[0] (PATH lookup) with argv and waits, at most timeout_seconds.
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_seconds = 120);

// Describe renders argv and the result for error messages: "mkfs.ext4 -F /dev/loop3: exit 1: ...".
std::string Describe(const std::vector<std::string>& argv, const CommandResult& result);

}  // namespace vios::csi
