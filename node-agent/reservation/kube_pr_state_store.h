// KubePrStateStore: a PrStateStore over VIOSVolume.status.reservation of one VIOSVolume
// (DESIGN.md §7). The version is the object's metadata.resourceVersion; CompareAndSwap is a JSON
// merge patch (RFC 7386) of the status subresource that carries metadata.resourceVersion, so the
// API server applies it only if nothing changed the object since (409 Conflict otherwise).
// Only status.reservation is written: attachments, phase and conditions belong to others.
//
//   auto client = std::make_shared<kube::Client>(kube::LoadDefaultConfig());
//   KubePrStateStore store(client, "vios-system", "pvc-1234");
//   StoredPrState current; store.Load(&current, &error);   // version = resourceVersion
//   store.CompareAndSwap(current.version, next, &new_version, &error);
//
// The layout of status.reservation is in pr_crd_layout.h.
//
// PostEvents posts Kubernetes Events (pr_events.h) on the same VIOSVolume through
// kube::EventRecorder (repeats aggregated), from one background thread started on first use:
// the PR OUT that caused them does not wait for the API server a second time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/event_recorder.h"
#include "node-agent/reservation/pr_state_store.h"

namespace vios::reservation {

class KubePrStateStore final : public PrStateStore {
 public:
  // client may be shared with other users; its RetryPolicy bounds how long a Load may retry
  // before it reports the API server unreachable (give it a short one: the SCSI command waits).
  // reporting_instance names this agent in the Events it posts (empty: the host name).
  KubePrStateStore(std::shared_ptr<kube::Client> client, std::string ns, std::string name,
                   std::string reporting_instance = "");
  ~KubePrStateStore() override;

  // UseForReads gives Load its own client, e.g. one with short timeouts: a copy must be
  // re-confirmed within its lease, falling back to the peers when the API server does not
  // answer, while writes keep the patient client (a write that timed out may still have been
  // applied: giving up early on writes makes outcomes ambiguous). Call before use.
  void UseForReads(std::shared_ptr<kube::Client> client) { read_client_ = std::move(client); }
  // Load: GET the VIOSVolume. A VIOSVolume that does not exist is an error (the volume is being
  // served, so it must exist), unlike a missing file.
  bool Load(StoredPrState* out, std::string* error) override;
  CasResult CompareAndSwap(uint64_t expected_version, const PrState& next, uint64_t* new_version,
                           std::string* error) override;
  // Queues the Events (at most kMaxPendingEvents waiting; older ones are dropped, logged).
  void PostEvents(const std::vector<PrEvent>& events) override;
  // FlushEvents waits until every queued Event was sent (tests).
  void FlushEvents();

  static constexpr size_t kMaxPendingEvents = 64;

  const std::string& ns() const { return ns_; }
  const std::string& name() const { return name_; }

 private:
  void Remember(const nlohmann::json& object);
  void EventLoop();

  std::shared_ptr<kube::Client> client_;
  std::shared_ptr<kube::Client> read_client_;  // For Load, when set (UseForReads).
  const std::string ns_;
  const std::string name_;
  const std::string reporting_instance_;

  std::mutex events_mu_;
  std::condition_variable events_cv_;
  std::deque<PrEvent> pending_;  // Guarded by events_mu_.
  bool sending_ = false;         // Guarded by events_mu_: an Event is being sent.
  bool stopping_ = false;        // Guarded by events_mu_.
  nlohmann::json regarding_;     // Guarded by events_mu_: the VIOSVolume's identity (uid).
  std::thread events_thread_;
};

}  // namespace vios::reservation
