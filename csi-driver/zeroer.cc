// BackendZeroer: zero and copy extents through the pool's own backends (see zeroer.h).
#include "csi-driver/zeroer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "node-agent/backend/file_backend.h"
#include "node-agent/pool/pool.h"
#include "node-agent/pool/zero_extents.h"

namespace vios::csi {

bool BackendZeroer::Zero(const PoolSpec& spec, const std::vector<pool::Extent>& extents,
                         std::string* error) {
  if (extents.empty()) return true;
  std::set<std::string> used;
  for (const auto& e : extents) used.insert(e.backend);
  pool::Pool p(spec.name, spec.extent_size);
  for (const auto& b : spec.backends) {
    if (!used.count(b.name)) continue;
    if (b.kind != "file" && b.kind != "device") {
      *error = "backend " + b.name + " is " + b.kind +
               ": the controller cannot zero it; the volume stays Releasing";
      return false;
    }
    backend::FileBackendOptions options;
    options.path = b.path;
    options.size_bytes = 0;  // the file's current size; never create or grow here
    std::string open_error;
    auto device = backend::FileBackend::Open(options, &open_error);
    if (!device) {
      *error = "opening backend " + b.name + " (" + b.path + "): " + open_error;
      return false;
    }
    if (!p.AddBackend(b.name, std::move(device), error)) return false;
  }
  for (const auto& name : used) {
    if (!p.Backend(name)) {
      *error = "extent on backend " + name + " which pool " + spec.name + " does not have";
      return false;
    }
  }
  return pool::ZeroExtents(p, extents, error);
}

}  // namespace vios::csi

namespace vios::csi {
namespace {

// Fd closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Piece is one contiguous run of a volume's logical bytes on one backend.
struct Piece {
  std::string backend;
  uint64_t offset;  // on the backend
  uint64_t length;
};

// Locate maps the volume byte `pos` to its backend position and how far that extent goes on.
std::optional<Piece> Locate(const std::vector<pool::Extent>& extents, uint64_t pos) {
  uint64_t start = 0;
  for (const auto& e : extents) {
    if (pos < start + e.length)
      return Piece{e.backend, e.offset + (pos - start), start + e.length - pos};
    start += e.length;
  }
  return std::nullopt;
}

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

bool BackendZeroer::Copy(const PoolSpec& spec, const std::vector<pool::Extent>& from,
                         const std::vector<pool::Extent>& to, uint64_t bytes, std::string* error) {
  std::map<std::string, Fd> fds;
  for (const auto& list : {from, to}) {
    for (const auto& e : list) {
      if (fds.count(e.backend)) continue;
      const BackendSpec* b = nullptr;
      for (const auto& candidate : spec.backends) {
        if (candidate.name == e.backend) b = &candidate;
      }
      if (!b) {
        *error = "extent on backend " + e.backend + " which pool " + spec.name + " does not have";
        return false;
      }
      if (b->kind != "file" && b->kind != "device") {
        *error = "backend " + b->name + " is " + b->kind + ": the controller cannot copy it";
        return false;
      }
      int fd = ::open(b->path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        *error = "opening backend " + b->name + " (" + b->path + "): " + std::strerror(errno);
        return false;
      }
      fds[e.backend].fd = fd;
    }
  }
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<char> buf(kChunk);
  for (uint64_t pos = 0; pos < bytes;) {
    auto src = Locate(from, pos);
    auto dst = Locate(to, pos);
    if (!src || !dst) {
      *error = "byte " + std::to_string(pos) + " is outside the " + (src ? "target" : "source") +
               " volume's extents";
      return false;
    }
    const size_t n = static_cast<size_t>(std::min({kChunk, src->length, dst->length, bytes - pos}));
    ssize_t got = ::pread(fds[src->backend].fd, buf.data(), n, static_cast<off_t>(src->offset));
    if (got != static_cast<ssize_t>(n)) {
      *error = "reading backend " + src->backend + " at " + std::to_string(src->offset) + ": " +
               (got < 0 ? std::strerror(errno) : "short read");
      return false;
    }
    if (!AllZero(buf.data(), n)) {
      ssize_t put = ::pwrite(fds[dst->backend].fd, buf.data(), n, static_cast<off_t>(dst->offset));
      if (put != static_cast<ssize_t>(n)) {
        *error = "writing backend " + dst->backend + " at " + std::to_string(dst->offset) + ": " +
                 (put < 0 ? std::strerror(errno) : "short write");
        return false;
      }
    }
    pos += n;
  }
  for (auto& [name, fd] : fds) {
    if (::fdatasync(fd.fd) != 0) {
      *error = "flushing backend " + name + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

}  // namespace vios::csi
