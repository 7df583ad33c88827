// LocalStateStore: atomic, checksummed persistence of the agent's cluster view (local_state.h).
#include "node-agent/cluster/local_state.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "common/log/log.h"

namespace vios::agent::cluster {
namespace {

constexpr const char* kFormatName = "vios-agent-state";
constexpr const char* kTempMarker = ".tmp.";

std::string NowRfc3339() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

[[noreturn]] void ThrowErrno(const std::string& what, const std::filesystem::path& p) {
  throw std::system_error(errno, std::generic_category(), what + " " + p.string());
}

void WriteAll(int fd, const std::string& data, const std::filesystem::path& p) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ThrowErrno("write", p);
    }
    done += static_cast<size_t>(n);
  }
}

// FsyncDir makes a rename in dir durable (the directory entry is metadata of the directory).
void FsyncDir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    ThrowErrno("open directory", dir);
  }
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    ThrowErrno("fsync directory", dir);
  }
  ::close(fd);
}

const nlohmann::json& Field(const nlohmann::json& j, const char* name, nlohmann::json::value_t t) {
  static const nlohmann::json kNull;
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    return kNull;
  }
  if (it->type() != t) {
    throw std::runtime_error(std::string("state field ") + name + " has the wrong type");
  }
  return *it;
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

nlohmann::json LocalState::ToJson() const {
  return {{"cluster", cluster},
          {"members", members},
          {"volumes", volumes},
          {"reservations", reservations},
          {"savedAt", saved_at}};
}

LocalState LocalState::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) {
    throw std::runtime_error("state payload is not a JSON object");
  }
  LocalState s;
  s.cluster = Field(j, "cluster", nlohmann::json::value_t::object);
  const auto& members = Field(j, "members", nlohmann::json::value_t::array);
  s.members = members.is_null() ? nlohmann::json::array() : members;
  const auto& volumes = Field(j, "volumes", nlohmann::json::value_t::array);
  s.volumes = volumes.is_null() ? nlohmann::json::array() : volumes;
  const auto& res = Field(j, "reservations", nlohmann::json::value_t::object);
  s.reservations = res.is_null() ? nlohmann::json::object() : res;
  const auto& saved = Field(j, "savedAt", nlohmann::json::value_t::string);
  s.saved_at = saved.is_null() ? "" : saved.get<std::string>();
  return s;
}

LocalStateStore::LocalStateStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::string LocalStateStore::Encode(const LocalState& state) {
  const std::string payload = state.ToJson().dump();
  nlohmann::json header = {{"format", kFormatName},
                           {"version", kFormatVersion},
                           {"length", payload.size()},
                           {"sha256", Sha256Hex(payload)}};
  return header.dump() + "\n" + payload;
}

LocalState LocalStateStore::Decode(const std::string& bytes) {
  const size_t nl = bytes.find('\n');
  if (nl == std::string::npos) {
    throw std::runtime_error("no header line (file truncated or not a state file)");
  }
  nlohmann::json header = nlohmann::json::parse(bytes.substr(0, nl), nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    throw std::runtime_error("header is not JSON");
  }
  if (header.value("format", "") != kFormatName) {
    throw std::runtime_error("header format is not " + std::string(kFormatName));
  }
  if (!header.contains("version") || !header["version"].is_number_integer()) {
    throw std::runtime_error("header has no version");
  }
  if (header["version"].get<int>() != kFormatVersion) {
    throw std::runtime_error("unsupported format version " + header["version"].dump() +
                             " (this agent reads " + std::to_string(kFormatVersion) + ")");
  }
  if (!header.contains("length") || !header["length"].is_number_unsigned() ||
      !header.contains("sha256") || !header["sha256"].is_string()) {
    throw std::runtime_error("header lacks length or sha256");
  }
  const std::string payload = bytes.substr(nl + 1);
  const auto length = header["length"].get<uint64_t>();
  if (payload.size() != length) {
    throw std::runtime_error("payload is " + std::to_string(payload.size()) +
                             " bytes, header says " + std::to_string(length));
  }
  const std::string sum = Sha256Hex(payload);
  if (sum != header["sha256"].get<std::string>()) {
    throw std::runtime_error("checksum mismatch: sha256 " + sum + ", header says " +
                             header["sha256"].get<std::string>());
  }
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded()) {
    throw std::runtime_error("payload is not JSON");
  }
  return LocalState::FromJson(j);
}

void LocalStateStore::Save(const LocalState& state) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    throw std::system_error(ec, "create state directory " + dir_.string());
  }
  LocalState stamped = state;
  stamped.saved_at = NowRfc3339();
  const std::string bytes = Encode(stamped);
  const std::filesystem::path final_path = path();
  const std::filesystem::path tmp =
      dir_ / (std::string(kFileName) + kTempMarker + std::to_string(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    ThrowErrno("create", tmp);
  }
  try {
    WriteAll(fd, bytes, tmp);
    if (::fsync(fd) != 0) {
      ThrowErrno("fsync", tmp);
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    ThrowErrno("rename into place", final_path);
  }
  FsyncDir(dir_);
}

LocalStateStore::LoadResult LocalStateStore::Load() {
  LoadResult result;
  std::error_code ec;
  // A temp file is a write that never reached its rename: the state file (if any) is the last
  // complete copy, so the temp is garbage — unless its writer (the pid in its name) is alive:
  // then it is a write in progress, maybe in this very process.
  const std::string temp_prefix = std::string(kFileName) + kTempMarker;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(temp_prefix, 0) == 0) {
      const long writer = std::strtol(name.c_str() + temp_prefix.size(), nullptr, 10);
      if (writer > 0 && (::kill(static_cast<pid_t>(writer), 0) == 0 || errno == EPERM)) {
        continue;
      }
      std::filesystem::remove(entry.path(), ec);
      ++result.stale_temps_removed;
      VIOS_LOG(kWarning, "removed stale temp file of an interrupted state write")
          .Field("file", entry.path().string());
    }
  }
  const std::filesystem::path p = path();
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    if (std::filesystem::exists(p, ec)) {
      result.outcome = Outcome::kCorrupt;
      result.error = "cannot open " + p.string();
      return result;
    }
    return result;  // kMissing
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  in.close();
  try {
    result.state = Decode(buf.str());
    result.outcome = Outcome::kLoaded;
    return result;
  } catch (const std::exception& e) {
    result.outcome = Outcome::kCorrupt;
    result.error = p.string() + ": " + e.what();
  }
  // Keep the bad file for a post-mortem but out of the way of the next start.
  const auto stamp = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::filesystem::path aside = p;
  aside += ".corrupt-" + std::to_string(stamp);
  std::filesystem::rename(p, aside, ec);
  if (!ec) {
    result.moved_to = aside.string();
  }
  VIOS_LOG(kError, "local cluster state is corrupt; moved aside, will re-fetch from the API server")
      .Field("error", result.error)
      .Field("moved_to", result.moved_to);
  return result;
}

}  // namespace vios::agent::cluster
