// MemoryPrStateStore and FilePrStateStore (atomic write + fsync + rename).
#include "node-agent/reservation/pr_state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vios::reservation {

bool MemoryPrStateStore::Load(StoredPrState* out, std::string* error) {
  (void)error;
  std::lock_guard<std::mutex> lock(mutex_);
  *out = stored_;
  return true;
}

CasResult MemoryPrStateStore::CompareAndSwap(uint64_t expected_version, const PrState& next,
                                             uint64_t* new_version, std::string* error) {
  (void)error;
  std::lock_guard<std::mutex> lock(mutex_);
  if (stored_.version != expected_version) {
    return CasResult::kConflict;
  }
  stored_.state = next;
  ++stored_.version;
  *new_version = stored_.version;
  return CasResult::kOk;
}

FilePrStateStore::FilePrStateStore(std::string path) : path_(std::move(path)) {}

bool FilePrStateStore::Load(StoredPrState* out, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  return LoadLocked(out, error);
}

bool FilePrStateStore::LoadLocked(StoredPrState* out, std::string* error) {
  if (::access(path_.c_str(), F_OK) != 0 && errno == ENOENT) {
    *out = StoredPrState{};  // Nothing stored yet.
    return true;
  }
  std::ifstream in(path_);
  if (!in) {
    *error = path_ + ": cannot open";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(buffer.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("version") ||
      !j["version"].is_number_unsigned() || !j.contains("reservation")) {
    *error = path_ + ": not a reservation state file";
    return false;
  }
  std::optional<PrState> state = PrStateFromJson(j["reservation"], error);
  if (!state.has_value()) {
    *error = path_ + ": " + *error;
    return false;
  }
  out->state = std::move(*state);
  out->version = j["version"].get<uint64_t>();
  return true;
}

bool FilePrStateStore::WriteLocked(const StoredPrState& stored, std::string* error) {
  const nlohmann::json j{{"version", stored.version}, {"reservation", ToJson(stored.state)}};
  const std::string text = j.dump(2) + "\n";
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      *error = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    *error = tmp + ": fsync: " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    *error = path_ + ": rename: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // Make the rename itself durable.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

CasResult FilePrStateStore::CompareAndSwap(uint64_t expected_version, const PrState& next,
                                           uint64_t* new_version, std::string* error) {
  std::lock_guard<std::mutex> lock(mutex_);
  StoredPrState current;
  if (!LoadLocked(&current, error)) {
    return CasResult::kError;
  }
  if (current.version != expected_version) {
    return CasResult::kConflict;
  }
  StoredPrState stored{next, expected_version + 1};
  if (!WriteLocked(stored, error)) {
    return CasResult::kError;
  }
  *new_version = stored.version;
  return CasResult::kOk;
}

}  // namespace vios::reservation
