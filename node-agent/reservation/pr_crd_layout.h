// The JSON forms of the cluster reservation state (DESIGN.md §7): PrState as stored in
// VIOSVolume.status.reservation, and the update an agent sends its peers after a PR OUT.
//
// Layout of status.reservation (crds/vios.dev_viosvolumes.yaml):
//
//   {"generation": 3, "aptpl": false,
//    "registrations": [{"port": "iqn.i,i,0x23d000000001|iqn.t:vol,t,0x1|1", "key":
//    "00000000000000ab"}], "type": "WriteExclusiveRegistrantsOnly",      // absent: no persistent
//    reservation "holder": "iqn.i,i,0x23d000000001|iqn.t:vol,t,0x1|1",   // "" for the
//    all-registrants types "spc2Holder": "..."}                          // SPC-2 RESERVE(6/10);
//    needs the CRD field
//
// A port string is "<initiator port>|<target port>|<relative target port>": the I_T nexus
// (SPC-4 §3.1.53) with the iSCSI initiator port spelled "<name>,i,0x<ISID>" (RFC 7143 §4.2.7.1).
// iSCSI names cannot contain '|', and the string is parsed from the right, so a hostile
// initiator name cannot forge the target half.
//
// The peer update (PrPeerNotifier's state_json) is
//
//   {"reservation": <status.reservation as above>,
//    "unitAttentions": [{"port": "<port string>", "asc": 42, "ascq": 5}],
//    "aborted": ["<port string>"]}                  // PREEMPT AND ABORT victims
//
// so that the agent serving a preempted nexus posts its unit attention (SPC-4 §5.13.11.4) and
// aborts its tasks (§5.13.11.4.5) although another agent executed the command.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/reservation/pr_state.h"

namespace vios::reservation {

// PortKey / PortFromKey: the port string above.
std::string PortKey(const PrPort& port);
std::optional<PrPort> PortFromKey(const std::string& key);

// ToCrdJson / PrStateFromCrdJson: PrState <-> status.reservation. PrStateFromCrdJson accepts a
// missing or null reservation (empty state) and rejects anything malformed without throwing.
nlohmann::json ToCrdJson(const PrState& state);
std::optional<PrState> PrStateFromCrdJson(const nlohmann::json& reservation, std::string* error);

// ParseResourceVersion: metadata.resourceVersion as uint64 (etcd revisions are decimal).
std::optional<uint64_t> ParseResourceVersion(const nlohmann::json& object);

// PrUpdate: what one PR OUT changed, as peers apply it.
struct PrUpdate {
  PrState state;
  std::vector<PrUnitAttention> unit_attentions;
  std::vector<PrPort> aborted;
};
std::string EncodeUpdate(const PrUpdate& update);
std::optional<PrUpdate> DecodeUpdate(const std::string& text, std::string* error);

}  // namespace vios::reservation
