// KubePrStateStore: VIOSVolume.status.reservation as the reservation store.
#include "node-agent/reservation/kube_pr_state_store.h"

#include "common/kube/errors.h"
#include "node-agent/reservation/pr_crd_layout.h"

namespace vios::reservation {
namespace {

using nlohmann::json;

const kube::ResourceRef& Volumes() { return kube::resources::kVIOSVolumes; }

std::string ErrorText(const std::exception& e) { return e.what(); }

}  // namespace

KubePrStateStore::KubePrStateStore(std::shared_ptr<kube::Client> client, std::string ns,
                                   std::string name)
    : client_(std::move(client)), ns_(std::move(ns)), name_(std::move(name)) {}

bool KubePrStateStore::Load(StoredPrState* out, std::string* error) {
  json object;
  try {
    object = client_->Get(Volumes(), ns_, name_);
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
  return CasResult::kOk;
}

}  // namespace vios::reservation
