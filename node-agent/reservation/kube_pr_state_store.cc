// KubePrStateStore: VIOSVolume.status.reservation as the reservation store.
#include "node-agent/reservation/kube_pr_state_store.h"

#include <unistd.h>

#include "common/kube/errors.h"
#include "common/log/log.h"
#include "node-agent/reservation/pr_crd_layout.h"

namespace vios::reservation {
namespace {

using nlohmann::json;

const kube::ResourceRef& Volumes() { return kube::resources::kVIOSVolumes; }

std::string ErrorText(const std::exception& e) { return e.what(); }

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) {
    return "vios-agent";
  }
  return name;
}

}  // namespace

KubePrStateStore::KubePrStateStore(std::shared_ptr<kube::Client> client, std::string ns,
                                   std::string name, std::string reporting_instance)
    : client_(std::move(client)),
      ns_(std::move(ns)),
      name_(std::move(name)),
      reporting_instance_(reporting_instance.empty() ? HostName() : std::move(reporting_instance)) {
}

KubePrStateStore::~KubePrStateStore() {
  {
    std::lock_guard lock(events_mu_);
    stopping_ = true;
  }
  events_cv_.notify_all();
  if (events_thread_.joinable()) {
    events_thread_.join();
  }
}

void KubePrStateStore::Remember(const nlohmann::json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    return;
  }
  const json& meta = object["metadata"];
  json regarding{{"apiVersion", "vios.dev/v1alpha1"},
                 {"kind", "VIOSVolume"},
                 {"metadata", {{"name", name_}, {"namespace", ns_}}}};
  if (meta.contains("uid") && meta["uid"].is_string()) {
    regarding["metadata"]["uid"] = meta["uid"];
  }
  std::lock_guard lock(events_mu_);
  regarding_ = std::move(regarding);
}

void KubePrStateStore::PostEvents(const std::vector<PrEvent>& events) {
  {
    std::lock_guard lock(events_mu_);
    for (const PrEvent& e : events) {
      if (pending_.size() >= kMaxPendingEvents) {
        VIOS_LOG(kWarning, "reservation event dropped (API server slow)")
            .Field("volume", name_)
            .Field("reason", pending_.front().reason);
        pending_.pop_front();
      }
      pending_.push_back(e);
    }
    if (!events_thread_.joinable()) {
      events_thread_ = std::thread([this] { EventLoop(); });
    }
  }
  events_cv_.notify_all();
}

void KubePrStateStore::FlushEvents() {
  std::unique_lock lock(events_mu_);
  events_cv_.wait(lock, [this] { return (pending_.empty() && !sending_) || stopping_; });
}

void KubePrStateStore::EventLoop() {
  kube::EventRecorder recorder(
      *client_, kube::EventRecorderOptions{.reporting_controller = "vios.dev/agent",
                                           .reporting_instance = reporting_instance_});
  std::unique_lock lock(events_mu_);
  while (true) {
    events_cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) {
      return;
    }
    PrEvent event = std::move(pending_.front());
    pending_.pop_front();
    json regarding = regarding_.is_null()
                         ? json{{"apiVersion", "vios.dev/v1alpha1"},
                                {"kind", "VIOSVolume"},
                                {"metadata", {{"name", name_}, {"namespace", ns_}}}}
                         : regarding_;
    sending_ = true;
    lock.unlock();
    // Best effort (EventRecorder logs failures): an Event must never fail a reservation.
    recorder.Record(regarding, event.warning ? kube::EventType::kWarning : kube::EventType::kNormal,
                    event.reason, event.action, event.note);
    lock.lock();
    sending_ = false;
    events_cv_.notify_all();
  }
}

bool KubePrStateStore::Load(StoredPrState* out, std::string* error) {
  json object;
  try {
    object = (read_client_ ? read_client_ : client_)->Get(Volumes(), ns_, name_);
  } catch (const kube::Error& e) {
    *error = "VIOSVolume " + ns_ + "/" + name_ + ": " + ErrorText(e);
    return false;
  }
  std::optional<uint64_t> version = ParseResourceVersion(object);
  if (!version.has_value()) {
    *error = "VIOSVolume " + ns_ + "/" + name_ + ": no numeric metadata.resourceVersion";
    return false;
  }
  json reservation;
  if (object.contains("status") && object["status"].is_object() &&
      object["status"].contains("reservation")) {
    reservation = object["status"]["reservation"];
  }
  std::string parse_error;
  std::optional<PrState> state = PrStateFromCrdJson(reservation, &parse_error);
  if (!state.has_value()) {
    *error = "VIOSVolume " + ns_ + "/" + name_ + " status.reservation: " + parse_error;
    return false;
  }
  out->state = std::move(*state);
  out->version = *version;
  Remember(object);
  return true;
}

CasResult KubePrStateStore::CompareAndSwap(uint64_t expected_version, const PrState& next,
                                           uint64_t* new_version, std::string* error) {
  // metadata.resourceVersion in a patch is a precondition (the API server compares it with the
  // stored object and answers 409 Conflict when they differ). Only status.reservation is sent.
  const json patch{{"metadata", {{"resourceVersion", std::to_string(expected_version)}}},
                   {"status", {{"reservation", ToCrdJson(next)}}}};
  json written;
  try {
    written = client_->PatchStatus(Volumes(), ns_, name_, patch);
  } catch (const kube::ApiError& e) {
    if (e.kind() == kube::ErrorKind::kConflict) {
      return CasResult::kConflict;
    }
    *error = "VIOSVolume " + ns_ + "/" + name_ + ": " + ErrorText(e);
    return CasResult::kError;
  } catch (const kube::Error& e) {
    *error = "VIOSVolume " + ns_ + "/" + name_ + ": " + ErrorText(e);
    return CasResult::kError;
  }
  std::optional<uint64_t> version = ParseResourceVersion(written);
  if (!version.has_value()) {
    *error = "VIOSVolume " + ns_ + "/" + name_ + ": patch answer without resourceVersion";
    return CasResult::kError;
  }
  *new_version = *version;
  Remember(written);
  return CasResult::kOk;
}

}  // namespace vios::reservation
