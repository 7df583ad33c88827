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
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/kube/client.h"
#include "node-agent/reservation/pr_state_store.h"

namespace vios::reservation {

class KubePrStateStore final : public PrStateStore {
 public:
  // client may be shared with other users; its RetryPolicy bounds how long a Load may retry
  // before it reports the API server unreachable (give it a short one: the SCSI command waits).
  KubePrStateStore(std::shared_ptr<kube::Client> client, std::string ns, std::string name);

  // Load: GET the VIOSVolume. A VIOSVolume that does not exist is an error (the volume is being
  // served, so it must exist), unlike a missing file.
  bool Load(StoredPrState* out, std::string* error) override;
  CasResult CompareAndSwap(uint64_t expected_version, const PrState& next, uint64_t* new_version,
                           std::string* error) override;

  const std::string& ns() const { return ns_; }
  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<kube::Client> client_;
  const std::string ns_;
  const std::string name_;
};

}  // namespace vios::reservation
