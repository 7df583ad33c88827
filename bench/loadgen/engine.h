// Engine: one libiscsi session driven asynchronously at a fixed queue depth.
//
// Single-threaded: a poll() loop around iscsi_service(); each of the qd slots owns its buffer and
// is resubmitted from its own completion, so the loop keeps exactly qd commands outstanding. In
// verify mode every write is stamped (block_stamp.h) and remembered by generation per I/O-sized
// chunk; no two in-flight commands touch the same chunk, so "the generation last written" is well
// defined; after the timed phase a read-back pass checks every chunk written.
//
//   Engine engine(options);
//   if (!engine.Connect(&error)) { ... }
//   RunResult r = engine.Run();
#pragma once

// clang-format off
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
// clang-format on

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/loadgen/histogram.h"
#include "bench/loadgen/options.h"

namespace vios::bench {

struct OpStats {
  uint64_t ios = 0;
  uint64_t bytes = 0;
  LatencyHistogram latency;
};

struct VerifyStats {
  uint64_t blocks_checked = 0;   // Logical blocks checked (timed phase and read-back).
  uint64_t readback_blocks = 0;  // Of which in the read-back pass.
  uint64_t failures = 0;
  std::map<std::string, uint64_t> failures_by_kind;  // Bounded: StampStatus names.
};

struct RunResult {
  std::string fatal_error;  // Connection loss, stall, submit failure: the run is not valid.
  uint32_t block_size = 0;  // LUN logical block size.
  uint64_t lun_bytes = 0;
  uint64_t region_bytes = 0;
  double elapsed_seconds = 0;  // Timed phase only.
  OpStats read;
  OpStats write;
  uint64_t io_errors = 0;
  VerifyStats verify;
};

// RequestStop asks a running engine to stop issuing and drain (for SIGINT).
void RequestStop();

class Engine {
 public:
  explicit Engine(Options options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Connect logs in (with CHAP if configured) and reads the LUN's capacity.
  bool Connect(std::string* error);
  // Run executes the timed phase, then (verify mode, writes) the read-back pass.
  RunResult Run();

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kTimed, kReadback };

  struct Slot {
    Engine* engine = nullptr;
    std::unique_ptr<uint8_t[]> buffer;
    uint64_t chunk = 0;
    bool write = false;
    Clock::time_point start;
    scsi_iovec iov{};  // Read target; must stay valid while the command runs.
  };

  static void Completed(iscsi_context* iscsi, int status, void* command_data, void* private_data);
  void Finish(Slot* slot, int status, scsi_task* task);
  // Issue starts the next command on slot; false when there is nothing more to issue.
  bool Issue(Slot* slot);
  bool PickTimed(Slot* slot);
  bool PickReadback(Slot* slot);
  void VerifyRead(const Slot& slot);
  // Drive runs the event loop until no command is outstanding.
  void Drive();
  void Fail(const std::string& message);

  Options options_;
  iscsi_context* iscsi_ = nullptr;
  int lun_ = 0;
  uint32_t block_size_ = 0;
  uint64_t lun_blocks_ = 0;
  uint64_t region_chunks_ = 0;
  uint64_t region_first_lba_ = 0;
  uint64_t lbas_per_chunk_ = 0;

  std::vector<Slot> slots_;
  std::vector<uint64_t> generation_;  // Verify: last generation written per chunk (0: none).
  std::vector<uint8_t> busy_;         // Verify: chunk has a command in flight.

  Phase phase_ = Phase::kTimed;
  bool issuing_ = true;
  uint32_t outstanding_ = 0;
  uint64_t issued_ = 0;
  uint64_t sequential_cursor_ = 0;
  uint64_t readback_cursor_ = 0;
  uint64_t next_generation_ = 0;
  uint64_t run_id_ = 0;
  uint64_t rng_ = 0;
  Clock::time_point deadline_;
  Clock::time_point last_progress_;
  uint32_t reported_failures_ = 0;
  RunResult result_;
};

}  // namespace vios::bench
