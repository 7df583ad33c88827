// LocalStateStore: the agent's own copy of what it needs to keep serving when the API server is
// unreachable — cluster configuration, peers, served volumes with their extents, reservation
// copies (DESIGN.md §5, "Local storage").
//
//   LocalStateStore store("/var/lib/vios/state");
//   store.Save(state);                       // atomic: temp file, fsync, rename, fsync directory
//   LocalStateStore::LoadResult r = store.Load();
//   if (r.outcome == LocalStateStore::Outcome::kCorrupt) { report r.error; r.moved_to kept aside }
//
// File format (cluster-state.json): one header line of JSON
//   {"format":"vios-agent-state","version":1,"length":N,"sha256":"<hex>"}
// followed by exactly N bytes of payload JSON. The checksum covers the payload bytes as written,
// so any truncation or bit flip is detected. A crash mid-write leaves at most a stale temp file,
// never a half-written state file (rename is atomic, POSIX rename(2)); Load removes stale temps.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace vios::agent::cluster {

// LocalState is what the store keeps. The Kubernetes objects are kept in their API form
// (trimmed to metadata, spec and status) so that the agent rebuilds its view from a local copy
// with the same code it uses for objects from the API server.
struct LocalState {
  nlohmann::json cluster;                                  // the VIOSCluster, or null
  nlohmann::json members = nlohmann::json::array();        // VIOSMembers, this one included
  nlohmann::json volumes = nlohmann::json::array();        // the VIOSVolumes this agent serves
  nlohmann::json reservations = nlohmann::json::object();  // volume name -> opaque PR copy
  std::string saved_at;                                    // RFC 3339, set by Save

  bool operator==(const LocalState&) const = default;
  nlohmann::json ToJson() const;
  // FromJson throws std::runtime_error naming the field that has the wrong type.
  static LocalState FromJson(const nlohmann::json& j);
};

class LocalStateStore {
 public:
  static constexpr int kFormatVersion = 1;
  static constexpr const char* kFileName = "cluster-state.json";

  enum class Outcome {
    kMissing,  // no state file: a first start
    kLoaded,   // state holds the saved copy
    kCorrupt,  // the file failed its checks; it was moved to moved_to
  };

  struct LoadResult {
    Outcome outcome = Outcome::kMissing;
    LocalState state;
    std::string error;     // for kCorrupt: what is wrong
    std::string moved_to;  // for kCorrupt: where the bad file now is ("" if it could not move)
    int stale_temps_removed = 0;
  };

  // dir is created (with parents) on the first Save.
  explicit LocalStateStore(std::filesystem::path dir);

  // Save writes state atomically. Throws std::system_error naming the file on I/O failure (the
  // previous copy is then still intact).
  void Save(const LocalState& state);
  // Load never throws for bad file content: corruption is a result, not an exception.
  LoadResult Load();

  std::filesystem::path path() const { return dir_ / kFileName; }
  const std::filesystem::path& dir() const { return dir_; }

  // Encode/Decode are the file format, exposed for tests. Decode throws std::runtime_error.
  static std::string Encode(const LocalState& state);
  static LocalState Decode(const std::string& bytes);

 private:
  std::filesystem::path dir_;
};

// Sha256Hex returns the lowercase hex SHA-256 of data.
std::string Sha256Hex(const std::string& data);

}  // namespace vios::agent::cluster
