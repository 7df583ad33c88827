// IscsiBackend: a BlockDevice over one LUN of an iSCSI target (the SAN), through libiscsi's async
// API (DESIGN.md §4 "Backends").
//
// One session per backend LUN, driven by its own thread with poll(): Submit (any thread) queues
// the request and wakes the thread through an eventfd; the thread issues READ(16)/WRITE(16) with
// scatter lists pointing at the caller's buffers (no copies), SYNCHRONIZE CACHE(16) for Flush,
// UNMAP for Discard and WRITE SAME(16) for WriteZeroes, and completes requests from libiscsi's
// callbacks. The session logs in with a configurable initiator name (a pass-through LUN uses the
// virtual port's own initiator IQN: the NPIV analogue), optionally with CHAP / mutual CHAP.
// libiscsi's own automatic reconnect is off: when the connection breaks, the context is destroyed
// (commands in flight complete with -ENOTCONN, a path error the Router acts on) and a new login is
// attempted with exponential backoff. While no session exists, requests fail at once with
// -ENOTCONN; a command the target does not answer fails with -ETIMEDOUT after
// command_timeout_seconds.
//
//   IscsiBackendOptions o;
//   o.portal = "127.0.0.1:3260"; o.target = "iqn.2026-11.dev.san:lun0"; o.lun = 1;
//   o.initiator_name = "iqn.2026-11.dev.vios:node-a";
//   auto backend = IscsiBackend::Open(o, &error);  // waits for the first login
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node-agent/backend/block_device.h"

struct iscsi_context;

namespace vios::backend {

struct IscsiBackendOptions {
  std::string portal;  // "host:port" (127.0.0.0/8 in tests).
  std::string target;  // Target IQN.
  int lun = 0;
  std::string initiator_name = "iqn.2026-11.dev.vios:agent";
  std::string chap_user;  // Empty: no CHAP.
  std::string chap_secret;
  std::string target_chap_user;  // Mutual CHAP, optional.
  std::string target_chap_secret;
  std::chrono::milliseconds connect_timeout{10000};  // Open waits this long for the first login.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{30000};
  int command_timeout_seconds = 30;  // Per SCSI command; 0 = none.
};

class IscsiBackend final : public BlockDevice {
 public:
  // Open starts the session thread and waits for login and READ CAPACITY(16).
  static std::unique_ptr<IscsiBackend> Open(const IscsiBackendOptions& options, std::string* error);
  ~IscsiBackend() override;
  IscsiBackend(const IscsiBackend&) = delete;
  IscsiBackend& operator=(const IscsiBackend&) = delete;

  uint64_t SizeBytes() const override { return size_.load(); }
  uint32_t BlockSize() const override { return block_size_.load(); }
  bool SupportsDiscard() const override { return discard_.load(); }
  void Submit(IoRequest* request) override;
  std::string Describe() const override;

  // Connected reports whether a session is logged in (libiscsi may be reconnecting under it).
  bool Connected() const { return connected_.load(); }
  // Number of successful logins (1 after Open; more after re-logins).
  uint64_t logins() const { return logins_.load(); }
  // ResetSession drops the session from any thread: commands in flight complete with -ENOTCONN
  // (so a router retries them on a peer at once) and the session logs in again after backoff.
  // For a stalled SAN, where waiting for the command timeout would hang the initiator.
  void ResetSession(const std::string& why);

  struct Op;  // One request in flight on the session thread (iscsi_backend.cc).

 private:
  explicit IscsiBackend(IscsiBackendOptions options);
  void Run();
  void StartConnect();
  void DropContext(const char* why, const std::string& detail);
  static void AbortSocket(iscsi_context* iscsi);
  void Issue(IoRequest* request);
  void IssueStep(Op* op);
  void OpDone(Op* op, int status, void* task);
  Op* NewOp();
  void FreeOp(Op* op);
  void Wake();

  static void ConnectCallback(iscsi_context* iscsi, int status, void* data, void* self);
  static void CapacityCallback(iscsi_context* iscsi, int status, void* data, void* self);
  static void CommandCallback(iscsi_context* iscsi, int status, void* data, void* op);

  const IscsiBackendOptions options_;
  std::atomic<uint64_t> size_{0};
  std::atomic<uint32_t> block_size_{512};
  std::atomic<bool> discard_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> logins_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> reset_requested_{false};
  std::mutex reset_mutex_;
  std::string reset_reason_;  // Guarded by reset_mutex_.
  int event_fd_ = -1;

  // Submission queue (any thread -> session thread).
  std::mutex queue_mutex_;
  std::vector<IoRequest*> queue_;
  std::vector<IoRequest*> draining_;  // Session thread only; swapped with queue_.

  // Readiness for Open.
  std::mutex ready_mutex_;
  std::condition_variable ready_cv_;
  bool ready_ = false;

  // Session thread state.
  iscsi_context* iscsi_ = nullptr;
  bool connecting_ = false;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::vector<std::unique_ptr<Op>> ops_;
  std::vector<Op*> free_ops_;
  bool drop_ = false;       // Destroy the context once the current iscsi_service call returned.
  std::string last_error_;  // Guarded by ready_mutex_.
  std::thread thread_;
};

}  // namespace vios::backend
