// FuseExport: one volume as one regular file in a FUSE mount (the `fuse` attach transport,
// DESIGN.md §4).
//
// Where the kernel has no iSCSI initiator, the node plugin asks the agent for a FUSE port and puts
// a loop device on the file (`losetup --direct-io=on`), which gives a kernel block device to
// format and mount. The file's size is the volume's; read/write go to the BlockDevice, fsync and
// flush become kFlush, fallocate(PUNCH_HOLE) becomes kDiscard and fallocate(ZERO_RANGE)
// kWriteZeroes. The file is opened with direct_io: the volume is shared storage, so the host page
// cache must not hold (or double-cache) its data; the loop device or the filesystem above caches.
//
//   std::string error;
//   auto fx = FuseExport::Start(device, {.mountpoint = "/run/vios/fuse/pvc-1"}, &error);
//   // fx->FilePath() == "/run/vios/fuse/pvc-1/volume"
//   fx->Stop();   // unmounts; detach loop devices first, a busy mount is detached lazily
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "node-agent/backend/block_device.h"
#include "node-agent/backend/io_counters.h"
#include "node-agent/fuse/sync_block_device.h"

struct fuse_session;

namespace vios::fuse {

struct FuseExportOptions {
  std::string mountpoint;            // Must exist and be an empty directory.
  std::string file_name = "volume";  // The one file in the mount.
  bool read_only = false;
  bool allow_other = false;  // Let non-root users open the file (needs root).
  unsigned max_threads = 4;  // libfuse worker threads (one request each at a time).
  // Optional: every read, write, flush and fallocate is recorded here — the agent passes the
  // volume's counters, so vios_volume_* metrics cover the fuse transport as they cover iSCSI.
  backend::IoCounters* counters = nullptr;
};

class FuseExport {
 public:
  // Start mounts the export and starts its thread. On failure returns nullptr with *error set;
  // nothing stays mounted. device must outlive the export.
  static std::unique_ptr<FuseExport> Start(backend::BlockDevice* device, FuseExportOptions options,
                                           std::string* error);
  ~FuseExport();
  FuseExport(const FuseExport&) = delete;
  FuseExport& operator=(const FuseExport&) = delete;

  // FilePath is the exported file: mountpoint/file_name.
  std::string FilePath() const { return options_.mountpoint + "/" + options_.file_name; }
  const FuseExportOptions& options() const { return options_; }
  // Stop unmounts and joins the thread. Idempotent.
  void Stop();

  // Internal: state the low-level callbacks reach through fuse_req_userdata().
  SyncBlockDevice& io() { return io_; }

 private:
  FuseExport(backend::BlockDevice* device, FuseExportOptions options);
  bool Mount(std::string* error);

  FuseExportOptions options_;
  SyncBlockDevice io_;
  fuse_session* session_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace vios::fuse
