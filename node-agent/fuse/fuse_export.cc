// FuseExport: the libfuse3 low-level filesystem with one regular file (see fuse_export.h).
//
// Inode 1 is the root directory, inode 2 the volume file. The file's size never changes while
// mounted (volume expansion will re-export or notify; not yet).
#define FUSE_USE_VERSION 312
#include "node-agent/fuse/fuse_export.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/log/log.h"

namespace vios::fuse {
namespace {

constexpr fuse_ino_t kFileIno = 2;
constexpr double kAttrTimeout = 1.0;

FuseExport* Export(fuse_req_t req) { return static_cast<FuseExport*>(fuse_req_userdata(req)); }

struct stat FileAttr(FuseExport* fx, fuse_ino_t ino) {
  struct stat st {};
  st.st_ino = ino;
  st.st_uid = 0;
  st.st_gid = 0;
  if (ino == FUSE_ROOT_ID) {
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | (fx->options().read_only ? 0444 : 0644);
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(fx->io().SizeBytes());
    st.st_blksize = fx->io().BlockSize();
    st.st_blocks = static_cast<blkcnt_t>((fx->io().SizeBytes() + 511) / 512);
  }
  return st;
}

void OnInit(void* /*userdata*/, fuse_conn_info* conn) {
  // Larger requests: fewer round trips for a loop device doing 512 KiB-1 MiB I/O.
  conn->max_write = 1u << 20;
  conn->max_readahead = 0;  // direct_io: no kernel readahead on our file.
}

void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseExport* fx = Export(req);
  if (parent != FUSE_ROOT_ID || fx->options().file_name != name) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param e{};
  e.ino = kFileIno;
  e.attr = FileAttr(fx, kFileIno);
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kAttrTimeout;
  fuse_reply_entry(req, &e);
}

void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  if (ino != FUSE_ROOT_ID && ino != kFileIno) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = FileAttr(Export(req), ino);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* /*fi*/) {
  FuseExport* fx = Export(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EPERM);
    return;
  }
  // The size is the volume's: truncating to it is a no-op (O_TRUNC opens do not happen for
  // block-style users, but `truncate -s SIZE` must not fail), anything else is refused.
  if ((to_set & FUSE_SET_ATTR_SIZE) != 0 &&
      static_cast<uint64_t>(attr->st_size) != fx->io().SizeBytes()) {
    fuse_reply_err(req, EPERM);
    return;
  }
  struct stat st = FileAttr(fx, ino);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  if (ino != FUSE_ROOT_ID) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  FuseExport* fx = Export(req);
  std::vector<char> buf(size);
  size_t used = 0;
  struct Entry {
    const char* name;
    fuse_ino_t ino;
    mode_t mode;
  };
  const Entry entries[] = {{".", FUSE_ROOT_ID, S_IFDIR},
                           {"..", FUSE_ROOT_ID, S_IFDIR},
                           {fx->options().file_name.c_str(), kFileIno, S_IFREG}};
  for (off_t i = off; i < 3; ++i) {
    struct stat st {};
    st.st_ino = entries[i].ino;
    st.st_mode = entries[i].mode;
    size_t need =
        fuse_add_direntry(req, buf.data() + used, size - used, entries[i].name, &st, i + 1);
    if (need > size - used) {
      break;
    }
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseExport* fx = Export(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (fx->options().read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

// Record counts one request in the export's counters (if it has any).
void Record(FuseExport* fx, backend::IoCounters::Kind kind, uint64_t bytes,
            std::chrono::steady_clock::time_point start, int rc) {
  if (backend::IoCounters* counters = fx->options().counters) {
    auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - start);
    counters->Record(kind, bytes, static_cast<uint64_t>(latency.count()), rc == 0);
  }
}

void OnRead(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* /*fi*/) {
  const auto start = std::chrono::steady_clock::now();
  FuseExport* fx = Export(req);
  uint64_t total = fx->io().SizeBytes();
  auto offset = static_cast<uint64_t>(off);
  if (off < 0 || offset >= total) {
    fuse_reply_buf(req, nullptr, 0);  // EOF.
    return;
  }
  size = static_cast<size_t>(std::min<uint64_t>(size, total - offset));
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < size) {
    buffer.resize(size);
  }
  int rc = fx->io().ReadAt(offset, std::span<uint8_t>(buffer.data(), size));
  Record(fx, backend::IoCounters::Kind::kRead, size, start, rc);
  if (rc != 0) {
    fuse_reply_err(req, -rc);
    return;
  }
  fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.data()), size);
}

void OnWrite(fuse_req_t req, fuse_ino_t /*ino*/, const char* data, size_t size, off_t off,
             fuse_file_info* /*fi*/) {
  const auto start = std::chrono::steady_clock::now();
  FuseExport* fx = Export(req);
  if (fx->options().read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t total = fx->io().SizeBytes();
  auto offset = static_cast<uint64_t>(off);
  if (off < 0 || offset >= total) {
    fuse_reply_err(req, size == 0 ? 0 : ENOSPC);  // A volume does not grow by writing.
    return;
  }
  size = static_cast<size_t>(std::min<uint64_t>(size, total - offset));
  int rc = fx->io().WriteAt(offset,
                            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), size));
  Record(fx, backend::IoCounters::Kind::kWrite, size, start, rc);
  if (rc != 0) {
    fuse_reply_err(req, -rc);
    return;
  }
  fuse_reply_write(req, size);
}

void OnFlushLike(fuse_req_t req) {
  const auto start = std::chrono::steady_clock::now();
  FuseExport* fx = Export(req);
  int rc = fx->io().Flush();
  Record(fx, backend::IoCounters::Kind::kOther, 0, start, rc);
  fuse_reply_err(req, -rc);
}

void OnFlush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) { OnFlushLike(req); }

void OnFsync(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  OnFlushLike(req);
}

void OnRelease(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, 0);
}

void OnFallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t off, off_t length,
                 fuse_file_info* /*fi*/) {
  FuseExport* fx = Export(req);
  if (fx->options().read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t total = fx->io().SizeBytes();
  if (off < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto offset = static_cast<uint64_t>(off);
  auto len = static_cast<uint64_t>(length);
  bool punch = (mode & FALLOC_FL_PUNCH_HOLE) != 0;
  bool zero = (mode & FALLOC_FL_ZERO_RANGE) != 0;
  if (!punch && !zero) {
    // Plain allocation: every byte of a volume already exists; growing is not possible.
    fuse_reply_err(req, offset + len <= total ? 0 : EFBIG);
    return;
  }
  if ((mode & FALLOC_FL_KEEP_SIZE) == 0 && punch) {
    fuse_reply_err(req, EOPNOTSUPP);  // fallocate(2): PUNCH_HOLE requires KEEP_SIZE.
    return;
  }
  if (offset >= total) {
    fuse_reply_err(req, 0);
    return;
  }
  len = std::min(len, total - offset);
  const auto start = std::chrono::steady_clock::now();
  int rc = fx->io().ZeroRange(offset, len, punch);
  Record(fx, backend::IoCounters::Kind::kOther, 0, start, rc);
  fuse_reply_err(req, -rc);
}

void OnStatfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  FuseExport* fx = Export(req);
  struct statvfs st {};
  st.f_bsize = fx->io().BlockSize();
  st.f_frsize = fx->io().BlockSize();
  st.f_blocks = fx->io().SizeBytes() / fx->io().BlockSize();
  st.f_files = 2;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.lookup = OnLookup;
  ops.getattr = OnGetattr;
  ops.setattr = OnSetattr;
  ops.readdir = OnReaddir;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.write = OnWrite;
  ops.flush = OnFlush;
  ops.fsync = OnFsync;
  ops.release = OnRelease;
  ops.fallocate = OnFallocate;
  ops.statfs = OnStatfs;
  return ops;
}();

}  // namespace

FuseExport::FuseExport(backend::BlockDevice* device, FuseExportOptions options)
    : options_(std::move(options)), io_(device) {}

std::unique_ptr<FuseExport> FuseExport::Start(backend::BlockDevice* device,
                                              FuseExportOptions options, std::string* error) {
  if (options.mountpoint.empty() || options.file_name.empty() ||
      options.file_name.find('/') != std::string::npos || options.file_name == "." ||
      options.file_name == "..") {
    *error = "fuse export needs a mountpoint and a plain file name";
    return nullptr;
  }
  std::unique_ptr<FuseExport> fx(new FuseExport(device, std::move(options)));
  if (!fx->Mount(error)) {
    return nullptr;
  }
  return fx;
}

bool FuseExport::Mount(std::string* error) {
  std::vector<std::string> args = {"vios-fuse",    "-o", "fsname=vios",        "-o",
                                   "subtype=vios", "-o", "default_permissions"};
  if (options_.allow_other) {
    args.insert(args.end(), {"-o", "allow_other"});
  }
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&fargs, &kOps, sizeof(kOps), this);
  fuse_opt_free_args(&fargs);
  if (session_ == nullptr) {
    *error = "fuse_session_new failed";
    return false;
  }
  if (fuse_session_mount(session_, options_.mountpoint.c_str()) != 0) {
    *error = "cannot mount FUSE at " + options_.mountpoint + " (is /dev/fuse usable?)";
    fuse_session_destroy(session_);
    session_ = nullptr;
    return false;
  }
  thread_ = std::thread([this] {
    fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(config, options_.max_threads);
    fuse_loop_cfg_set_idle_threads(config, 1);
    int rc = fuse_session_loop_mt(session_, config);
    fuse_loop_cfg_destroy(config);
    VIOS_LOG(kInfo, "fuse export loop ended")
        .Field("mountpoint", options_.mountpoint)
        .Field("rc", rc);
  });
  VIOS_LOG(kInfo, "fuse export mounted")
      .Field("file", FilePath())
      .Field("device", io_.device()->Describe())
      .Field("bytes", io_.SizeBytes());
  return true;
}

void FuseExport::Stop() {
  if (stopped_.exchange(true) || session_ == nullptr) {
    return;
  }
  fuse_session_exit(session_);
  // A plain unmount ends the kernel connection, which wakes the loop's threads out of read().
  // If a loop device or an open descriptor still holds the file, it fails with EBUSY and libfuse's
  // unmount below detaches lazily: the export then serves until the last user lets go.
  if (::umount2(options_.mountpoint.c_str(), 0) != 0 && errno == EBUSY) {
    VIOS_LOG(kWarning, "fuse export busy at stop; detaching lazily, serving until released")
        .Field("mountpoint", options_.mountpoint);
  }
  fuse_session_unmount(session_);
  if (thread_.joinable()) {
    thread_.join();
  }
  fuse_session_destroy(session_);
  session_ = nullptr;
  VIOS_LOG(kInfo, "fuse export unmounted").Field("mountpoint", options_.mountpoint);
}

FuseExport::~FuseExport() { Stop(); }

}  // namespace vios::fuse
