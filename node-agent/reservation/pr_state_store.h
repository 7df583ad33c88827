// PrStateStore: where a logical unit's reservation state lives between commands and restarts.
//
// The store is versioned like a Kubernetes object: Load returns the state and an opaque version;
// CompareAndSwap writes only if the stored version is still the expected one (the cluster store
// maps it to VIOSVolume.resourceVersion). The version is NOT PRgeneration: RESERVE and RELEASE
// change the state without changing PRgeneration (SPC-4 §6.15.2).
//
//   MemoryPrStateStore store;                              // tests, non-persistent LUs
//   FilePrStateStore store("/var/lib/vios/pr/vol-1.json"); // APTPL across agent restarts
//   StoredPrState current; store.Load(&current, &error);
//   store.CompareAndSwap(current.version, next, &new_version, &error);
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "node-agent/reservation/pr_events.h"
#include "node-agent/reservation/pr_state.h"

namespace vios::reservation {

struct StoredPrState {
  PrState state;
  uint64_t version = 0;  // 0: nothing stored yet.
};

enum class CasResult : uint8_t {
  kOk,        // Written; *new_version set.
  kConflict,  // The stored version moved on: reload, recompute, retry.
  kError,     // Could not write (I/O, API server unreachable); *error says why.
};

class PrStateStore {
 public:
  virtual ~PrStateStore() = default;
  // Load reads the current state; false with *error on failure (a missing object is an empty
  // state at version 0, not an error).
  virtual bool Load(StoredPrState* out, std::string* error) = 0;
  // CompareAndSwap stores next if the stored version equals expected_version.
  virtual CasResult CompareAndSwap(uint64_t expected_version, const PrState& next,
                                   uint64_t* new_version, std::string* error) = 0;
  // PostEvents reports what a reservation command executed HERE changed (pr_events.h), after
  // its CompareAndSwap succeeded. Must not block (the command waits); default: nowhere.
  virtual void PostEvents(const std::vector<PrEvent>& events) { (void)events; }
};

// MemoryPrStateStore keeps the state in the process. Thread-safe.
class MemoryPrStateStore final : public PrStateStore {
 public:
  bool Load(StoredPrState* out, std::string* error) override;
  CasResult CompareAndSwap(uint64_t expected_version, const PrState& next, uint64_t* new_version,
                           std::string* error) override;

 private:
  std::mutex mutex_;
  StoredPrState stored_;
};

// FilePrStateStore keeps the state as JSON ({"version": N, "reservation": {...}}) in one file,
// replaced atomically (write temp, fsync, rename, fsync directory; DESIGN.md §5). The version
// check protects against two policies sharing a file within one process; it is not a lock
// between processes. Thread-safe.
class FilePrStateStore final : public PrStateStore {
 public:
  explicit FilePrStateStore(std::string path);
  bool Load(StoredPrState* out, std::string* error) override;
  CasResult CompareAndSwap(uint64_t expected_version, const PrState& next, uint64_t* new_version,
                           std::string* error) override;
  const std::string& path() const { return path_; }

 private:
  bool LoadLocked(StoredPrState* out, std::string* error);
  bool WriteLocked(const StoredPrState& stored, std::string* error);

  const std::string path_;
  std::mutex mutex_;
};

}  // namespace vios::reservation
