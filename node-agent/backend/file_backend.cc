// FileBackend: io_uring submission under one mutex, completion on a dedicated thread.
#include "node-agent/backend/file_backend.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"

namespace vios::backend {
namespace {

constexpr uint64_t kStageMask = 0x3;
constexpr uint64_t kShutdownTag = 0;

std::string Errno(const std::string& what, int err) { return what + ": " + std::strerror(err); }

}  // namespace

FileBackend::FileBackend(FileBackendOptions options) : options_(std::move(options)) {}

std::unique_ptr<FileBackend> FileBackend::Open(const FileBackendOptions& options,
                                               std::string* error) {
  std::unique_ptr<FileBackend> b(new FileBackend(options));
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (options.create && !options.read_only) {
    flags |= O_CREAT;
  }
  b->fd_ = ::open(options.path.c_str(), flags, 0600);
  if (b->fd_ < 0) {
    *error = Errno("open " + options.path, errno);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(b->fd_, &st) != 0) {
    *error = Errno("stat " + options.path, errno);
    return nullptr;
  }
  uint64_t size = 0;
  if (S_ISBLK(st.st_mode)) {
    b->block_device_ = true;
    if (::ioctl(b->fd_, BLKGETSIZE64, &size) != 0) {
      *error = Errno("BLKGETSIZE64 " + options.path, errno);
      return nullptr;
    }
    b->supports_discard_ = true;  // fallocate on a block device zeroes or discards.
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
    if (options.create && options.size_bytes > size) {
      if (::ftruncate(b->fd_, static_cast<off_t>(options.size_bytes)) != 0) {
        *error = Errno("truncate " + options.path, errno);
        return nullptr;
      }
      size = options.size_bytes;
    }
    // Probe hole punching beyond the end of the file: a no-op that tells whether the filesystem
    // deallocates.
    const off_t probe = static_cast<off_t>((size + 4095) / 4096 * 4096 + 4096);
    b->supports_discard_ =
        options.read_only ||
        ::fallocate(b->fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, probe, 4096) == 0;
  } else {
    *error = options.path + ": not a regular file or block device";
    return nullptr;
  }
  if (options.size_bytes != 0) {
    if (options.size_bytes > size) {
      *error = options.path + ": smaller than the configured size";
      return nullptr;
    }
    size = options.size_bytes;
  }
  size -= size % options.block_size;
  b->size_.store(size);

  if (options.mode == FileIoMode::kAuto) {
    b->direct_fd_ = ::open(options.path.c_str(),
                           (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
#ifdef STATX_DIOALIGN
    struct statx sx {};
    if (b->direct_fd_ >= 0 && ::statx(b->direct_fd_, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN) != 0 && sx.stx_dio_mem_align != 0) {
      b->direct_alignment_ = std::max(sx.stx_dio_mem_align, sx.stx_dio_offset_align);
    }
#endif
  }

  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = options.queue_depth * 4;
  const int rc = io_uring_queue_init_params(options.queue_depth, &b->ring_, &params);
  if (rc < 0) {
    *error = Errno("io_uring_queue_init", -rc);
    return nullptr;
  }
  b->ring_ready_ = true;
  b->completion_thread_ = std::thread([raw = b.get()] { raw->CompletionLoop(); });
  VIOS_LOG(kInfo, "file backend opened")
      .Field("path", options.path)
      .Field("size", size)
      .Field("direct", b->direct_fd_ >= 0)
      .Field("discard", b->supports_discard_);
  return b;
}

FileBackend::~FileBackend() {
  if (ring_ready_) {
    {
      std::lock_guard<std::mutex> lock(submit_mutex_);
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      while (sqe == nullptr) {
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
      }
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kShutdownTag);
      io_uring_submit(&ring_);
    }
    completion_thread_.join();
    io_uring_queue_exit(&ring_);
  }
  if (direct_fd_ >= 0) {
    ::close(direct_fd_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool FileBackend::Resize(uint64_t size_bytes, std::string* error) {
  if (block_device_) {
    *error = "cannot resize a block device";
    return false;
  }
  if (::ftruncate(fd_, static_cast<off_t>(size_bytes)) != 0) {
    *error = Errno("truncate " + options_.path, errno);
    return false;
  }
  size_.store(size_bytes - size_bytes % options_.block_size);
  return true;
}

bool FileBackend::Aligned(const IoRequest* request) const {
  const uint64_t a = direct_alignment_;
  const auto address = reinterpret_cast<uintptr_t>(
      request->op == IoOp::kRead ? static_cast<const void*>(request->read_buffer.data())
                                 : static_cast<const void*>(request->write_buffer.data()));
  return address % a == 0 && request->offset % a == 0 && request->ByteLength() % a == 0;
}

void FileBackend::Submit(IoRequest* request) {
  const uint64_t length = request->ByteLength();
  const uint64_t size = SizeBytes();
  int error = 0;
  if (request->op != IoOp::kFlush && (request->offset > size || length > size - request->offset)) {
    error = -EINVAL;
  } else if (options_.read_only && request->op != IoOp::kRead && request->op != IoOp::kFlush) {
    error = -EROFS;
  } else if (length == 0 && request->op != IoOp::kFlush) {
    request->result = 0;
    request->completion->IoDone(request);
    return;
  }
  if (error != 0) {
    request->result = error;
    request->completion->IoDone(request);
    return;
  }
  SubmitStage(request, 0);
}

void FileBackend::Prepare(io_uring_sqe* sqe, IoRequest* request, unsigned stage) {
  const auto offset = static_cast<__u64>(request->offset);
  switch (request->op) {
    case IoOp::kRead: {
      const int fd = direct_fd_ >= 0 && Aligned(request) ? direct_fd_ : fd_;
      io_uring_prep_read(sqe, fd, request->read_buffer.data(),
                         static_cast<unsigned>(request->read_buffer.size()), offset);
      break;
    }
    case IoOp::kWrite: {
      const int fd = direct_fd_ >= 0 && Aligned(request) ? direct_fd_ : fd_;
      io_uring_prep_write(sqe, fd, request->write_buffer.data(),
                          static_cast<unsigned>(request->write_buffer.size()), offset);
      break;
    }
    case IoOp::kFlush:
      io_uring_prep_fsync(sqe, fd_, block_device_ ? 0 : IORING_FSYNC_DATASYNC);
      break;
    case IoOp::kDiscard:
      io_uring_prep_fallocate(sqe, fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                              request->length);
      break;
    case IoOp::kWriteZeroes:
      io_uring_prep_fallocate(
          sqe, fd_,
          (stage == 0 ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE) | FALLOC_FL_KEEP_SIZE, offset,
          request->length);
      break;
  }
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(request) | stage);
}

void FileBackend::SubmitStage(IoRequest* request, unsigned stage) {
  std::lock_guard<std::mutex> lock(submit_mutex_);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // The submission queue is full of entries the kernel has not taken yet: push them.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      std::this_thread::yield();
    }
  }
  Prepare(sqe, request, stage);
  int rc = io_uring_submit(&ring_);
  while (rc == -EBUSY || rc == -EAGAIN || rc == -EINTR) {
    std::this_thread::yield();
    rc = io_uring_submit(&ring_);
  }
  if (rc < 0) {
    VIOS_LOG(kError, "io_uring_submit failed").Field("errno", -rc);
  }
}

void FileBackend::CompletionLoop() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR) {
      continue;
    }
    if (rc < 0) {
      VIOS_LOG(kError, "io_uring_wait_cqe failed").Field("errno", -rc);
      return;
    }
    unsigned head = 0;
    unsigned seen = 0;
    bool shutdown = false;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      const uint64_t data = io_uring_cqe_get_data64(cqe);
      if (data == kShutdownTag) {
        shutdown = true;
        continue;
      }
      auto* request = reinterpret_cast<IoRequest*>(data & ~kStageMask);
      Complete(request, static_cast<unsigned>(data & kStageMask), cqe->res);
    }
    io_uring_cq_advance(&ring_, seen);
    if (shutdown) {
      return;
    }
  }
}

void FileBackend::Complete(IoRequest* request, unsigned stage, int res) {
  int result = 0;
  switch (request->op) {
    case IoOp::kRead:
    case IoOp::kWrite:
      if (res < 0) {
        result = res;
      } else if (static_cast<uint64_t>(res) < request->ByteLength()) {
        result = FinishTransferSync(request, static_cast<uint64_t>(res));
      }
      break;
    case IoOp::kFlush:
      result = res < 0 ? res : 0;
      break;
    case IoOp::kDiscard:
      if (res == -EOPNOTSUPP || res == -EINVAL) {
        result = WriteZeroesSync(request->offset, request->length);
      } else {
        result = res < 0 ? res : 0;
      }
      break;
    case IoOp::kWriteZeroes:
      if ((res == -EOPNOTSUPP || res == -EINVAL) && stage == 0) {
        SubmitStage(request, 1);  // Punch a hole instead: reads return zeroes as well.
        return;
      }
      if (res == -EOPNOTSUPP || res == -EINVAL) {
        result = WriteZeroesSync(request->offset, request->length);
      } else {
        result = res < 0 ? res : 0;
      }
      break;
  }
  request->result = result;
  request->completion->IoDone(request);
}

// FinishTransferSync completes a short read or write with blocking calls on the buffered
// descriptor. Reads beyond the end of a sparse file return zeroes.
int FileBackend::FinishTransferSync(IoRequest* request, uint64_t done) {
  const uint64_t total = request->ByteLength();
  while (done < total) {
    const off_t at = static_cast<off_t>(request->offset + done);
    ssize_t n;
    if (request->op == IoOp::kRead) {
      n = ::pread(fd_, request->read_buffer.data() + done, total - done, at);
      if (n == 0) {
        std::memset(request->read_buffer.data() + done, 0, total - done);
        return 0;
      }
    } else {
      n = ::pwrite(fd_, request->write_buffer.data() + done, total - done, at);
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    done += static_cast<uint64_t>(n);
  }
  return 0;
}

int FileBackend::WriteZeroesSync(uint64_t offset, uint64_t length) {
  static const std::array<uint8_t, 64 * 1024> kZeroes{};
  while (length > 0) {
    const size_t n = std::min<uint64_t>(length, kZeroes.size());
    const ssize_t w = ::pwrite(fd_, kZeroes.data(), n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    offset += static_cast<uint64_t>(w);
    length -= static_cast<uint64_t>(w);
  }
  return 0;
}

}  // namespace vios::backend
