// One iSCSI connection (and, with MaxConnections=1, its session): socket I/O on an event loop,
// the login phase, and the full feature phase handlers. The handlers live in files by PDU family
// (login.cc, text.cc, scsi_command.cc, data_out.cc, task_management.cc, logout.cc, nop.cc); this
// header is the one place that lists the connection's state.
//
// Threading: everything runs on the owning loop's thread except TaskDone, which the SCSI layer may
// call from any thread; it only queues the task and wakes the loop through an eventfd. A closed
// connection stays allocated until every task it submitted has come back, so late TaskDone calls
// land safely and are dropped.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node-agent/iscsi/chap.h"
#include "node-agent/iscsi/iscsi_task.h"
#include "node-agent/iscsi/negotiation.h"
#include "node-agent/iscsi/pdu_reader.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/session.h"
#include "node-agent/net/event_loop.h"

namespace vios::iscsi {

// LoginState is the connection's state before the full feature phase (RFC 7143 §6).
struct LoginState {
  bool started = false;
  Stage stage = Stage::kSecurity;
  std::array<uint8_t, 6> isid{};
  uint16_t tsih = 0;
  uint16_t cid = 0;
  uint32_t itt = 0;
  std::string initiator_name;
  std::shared_ptr<Target> target;
  bool discovery = false;
  bool auth_required = false;  // CHAP configured for this target (or for discovery).
  bool auth_method_chosen = false;
  bool authenticated = false;
  std::unique_ptr<ChapAuthenticator> chap;
  SessionParams params;
  bool sent_tpgt = false;
  std::vector<uint8_t> partial_text;  // Accumulated over C-bit PDUs (§6.6).
};

class Connection : public net::Watcher, public scsi::TaskCompletion {
 public:
  Connection(Server* server, Server::Loop* loop, uint64_t id, int fd, PortalInfo portal);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool Start();
  void OnEvents(uint32_t events) override;
  void TaskDone(scsi::Task* task) override;
  // Close shuts the socket; the object lives on until submitted tasks come back. Idempotent.
  void Close(std::string_view reason);
  // Tick runs keep-alive and login timeouts (loop timer).
  void Tick(uint64_t now_ms);
  // AbortForOtherNexus aborts this connection's tasks (all, or those for lun) because of another
  // nexus's task management or PREEMPT AND ABORT: silently (TAS=0), then done runs once the Device
  // has returned them. Loop thread only (Server::HandleFor posts here).
  void AbortForOtherNexus(std::optional<uint64_t> lun, std::function<void()> done);

 private:
  class CompletionWatcher : public net::Watcher {
   public:
    explicit CompletionWatcher(Connection* c) : c_(c) {}
    void OnEvents(uint32_t) override { c_->DrainCompletions(); }

   private:
    Connection* c_;
  };

  // connection.cc (socket, dispatch, task pool, completions, teardown) and send_queue.cc.
  void ReadSocket();
  void Dispatch(const Pdu& pdu);
  void DrainCompletions();
  void AfterEvents();
  void MaybeFinish();
  void Flush();
  void WantWrite(bool on);
  OutPdu* NewOut();
  void FreeOut(OutPdu* out);
  // Enqueue fills StatSN/ExpCmdSN/MaxCmdSN (advancing StatSN when status_bearing), the data
  // segment padding and digests, and queues the PDU.
  void Enqueue(OutPdu* out, bool status_bearing);
  void SetOwnedData(OutPdu* out, std::vector<uint8_t> data);
  void SendReject(const Bhs& rejected, RejectReason reason);
  void ProtocolError(const Bhs& bhs, RejectReason reason, std::string_view what);
  IscsiTask* AllocTask();
  void ReleaseTask(IscsiTask* task);
  void MaybeReleaseTask(IscsiTask* task);
  IscsiTask* FindTaskByItt(uint32_t itt);
  IscsiTask* FindTaskByTtt(uint32_t ttt);
  bool CheckCmdSn(const Bhs& bhs);
  uint32_t MaxCmdSn() const;

  // login.cc
  void HandleLogin(const Pdu& pdu);
  bool LoginFirstPdu(const TextKeys& keys, LoginStatus* status);
  bool LoginSecurityKeys(const TextKeys& keys, TextKeys* response, LoginStatus* status);
  bool LoginOperationalKeys(const TextKeys& keys, TextKeys* response, LoginStatus* status);
  bool EnterFullFeature(LoginStatus* status);
  void SendLoginResponse(const Bhs& request, bool transit, uint8_t nsg, LoginStatus status,
                         const TextKeys& keys);
  void LoginFailed(const Bhs& request, LoginStatus status, std::string_view why);

  // text.cc
  void HandleText(const Pdu& pdu);
  std::vector<uint8_t> SendTargets(const std::string& which);
  void SendTextChunk(uint32_t itt, uint64_t raw_lun);

  // scsi_command.cc
  void HandleScsiCommand(const Pdu& pdu);
  void Submit(IscsiTask* task);
  void Respond(IscsiTask* task);
  void SendScsiResponse(IscsiTask* task, uint32_t residual, bool underflow, bool overflow);
  void FailCommand(const Bhs& bhs, scsi::Status status, scsi::SenseKey key, uint8_t asc,
                   uint8_t ascq);

  // data_out.cc
  void HandleDataOut(const Pdu& pdu);
  void SendR2ts(IscsiTask* task);

  // task_management.cc
  void HandleTaskManagement(const Pdu& pdu);
  void AbortTask(IscsiTask* task, PendingTmf* tmf);
  void AbortThirdParties(PendingTmf* tmf, std::optional<uint64_t> lun);
  void ThirdPartyAbortDone(uint32_t tmf_itt);
  void FinishTmf(PendingTmf* tmf);

  // logout.cc
  void HandleLogout(const Pdu& pdu);
  void SendLogoutResponse(uint32_t itt, LogoutResponse response);
  void MaybeSendDeferredLogout();

  // nop.cc
  void HandleNopOut(const Pdu& pdu);
  void SendPing(uint64_t now_ms);

  Server* server_;
  Server::Loop* loop_;
  net::EventLoop& event_loop_;
  uint64_t id_;
  int fd_;
  int done_fd_;  // eventfd: TaskDone wakes the loop.
  PortalInfo portal_;
  std::string local_address_;  // For SendTargets when the portal listens on a wildcard.
  CompletionWatcher completion_watcher_{this};
  bool closing_ = false;
  bool finished_ = false;
  bool want_write_ = false;
  bool in_events_ = false;
  bool attached_ = false;
  bool nexus_added_ = false;

  PduReader reader_;
  bool header_digest_ = false;  // In force for what we send (full feature phase).
  bool data_digest_ = false;
  uint32_t stat_sn_ = 0;

  LoginState login_;
  std::unique_ptr<Session> session_;

  // Send queue.
  OutPdu* out_head_ = nullptr;
  OutPdu* out_tail_ = nullptr;
  OutPdu* out_free_ = nullptr;
  std::vector<std::unique_ptr<OutPdu>> out_storage_;

  // Task pool.
  std::vector<std::unique_ptr<IscsiTask>> task_storage_;
  IscsiTask* task_free_ = nullptr;
  IscsiTask* active_head_ = nullptr;
  uint32_t active_count_ = 0;
  uint32_t in_device_ = 0;  // Submitted, TaskDone not yet processed.

  // Completions from any thread.
  std::mutex done_mu_;
  IscsiTask* done_head_ = nullptr;  // Guarded by done_mu_.

  std::array<PendingTmf, 8> tmfs_{};
  std::list<PendingTmf> external_tmfs_;  // Aborts on behalf of other nexuses (stable addresses).

  // Text response continuation (§11.11: C bit, TTT).
  std::vector<uint8_t> text_pending_;
  size_t text_offset_ = 0;
  uint32_t text_ttt_ = kReservedTag;

  // Keep-alive.
  uint64_t created_ms_;
  uint64_t last_rx_ms_;
  uint64_t ping_sent_ms_ = 0;
  uint32_t ping_ttt_ = 0;
  bool ping_outstanding_ = false;
  bool logout_sent_ = false;
  // A Logout that arrives while tasks are in the Device is answered once they are back (their
  // responses go first), so a clean logout loses no command the Device completed.
  bool logout_deferred_ = false;
  uint32_t logout_itt_ = 0;
};

// DecodeLun turns the 8-byte LUN field into a LUN number (SAM-5 §4.6.4/§4.6.5: peripheral and
// flat space addressing, the two a Linux initiator uses).
inline uint64_t DecodeLun(uint64_t raw) {
  uint8_t b0 = static_cast<uint8_t>(raw >> 56);
  uint8_t b1 = static_cast<uint8_t>(raw >> 48);
  return (static_cast<uint64_t>(b0 & 0x3f) << 8) | b1;
}

}  // namespace vios::iscsi
