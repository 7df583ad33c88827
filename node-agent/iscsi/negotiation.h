// Operational parameter negotiation (RFC 7143 §13): the target's limits, the values a session ends
// up with, and the per-key rules (declarative, min, max, AND, OR, list).
#pragma once

#include <cstdint>
#include <string>

#include "node-agent/iscsi/text_keys.h"

namespace vios::iscsi {

// TargetLimits are what this target offers or accepts; configured per Server.
struct TargetLimits {
  uint32_t max_recv_data_segment_length = 262144;  // We declare this (RFC 7143 §13.12).
  uint32_t max_burst_length = 1048576;
  uint32_t first_burst_length = 262144;
  bool immediate_data = true;
  bool initial_r2t = false;  // We accept unsolicited Data-Out when the initiator wants it.
  uint16_t max_outstanding_r2t = 16;
  bool allow_header_digest = true;
  bool allow_data_digest = true;
  uint16_t default_time2wait = 2;
  uint16_t default_time2retain = 0;  // ERL0: no connection recovery, nothing to retain.
};

// SessionParams are the negotiated values, starting at the RFC 7143 §13 defaults.
struct SessionParams {
  uint32_t initiator_max_recv_data_segment_length = 8192;  // Limit of what we send.
  uint32_t target_max_recv_data_segment_length = 8192;     // Limit of what we accept.
  uint32_t max_burst_length = 262144;
  uint32_t first_burst_length = 65536;
  bool immediate_data = true;
  bool initial_r2t = true;
  bool header_digest = false;
  bool data_digest = false;
  uint16_t max_outstanding_r2t = 1;
  uint16_t default_time2wait = 2;
  uint16_t default_time2retain = 20;
  bool discovery = false;
};

// Negotiator answers operational keys of one login (or Text exchange).
class Negotiator {
 public:
  Negotiator(const TargetLimits& limits, SessionParams* params)
      : limits_(limits), params_(params) {}

  // Respond answers one operational key into *response. Returns false for keys it does not
  // know (the caller answers NotUnderstood or handles them as login keys).
  bool Respond(const std::string& key, const std::string& value, TextKeys* response);

  // Finish applies consistency rules once the stage ends (FirstBurstLength <= MaxBurstLength) and
  // appends declarations the initiator did not ask for but must see (our MaxRecvDataSegmentLength).
  void Finish(TextKeys* response);

 private:
  bool Numeric(const std::string& key, const std::string& value, uint64_t lo, uint64_t hi,
               uint64_t* out, TextKeys* response);

  const TargetLimits& limits_;
  SessionParams* params_;
  bool declared_mrdsl_ = false;
};

}  // namespace vios::iscsi
