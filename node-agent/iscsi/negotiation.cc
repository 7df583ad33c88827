// Per-key negotiation rules of RFC 7143 §13. The target never proposes values the initiator did
// not offer, except its own declarative MaxRecvDataSegmentLength (§13.12), which the initiator
// needs to size its PDUs.
#include "node-agent/iscsi/negotiation.h"

#include <algorithm>

namespace vios::iscsi {
namespace {

std::optional<bool> ParseBool(const std::string& value) {
  if (value == "Yes") return true;
  if (value == "No") return false;
  return std::nullopt;
}

const char* BoolText(bool v) { return v ? "Yes" : "No"; }

}  // namespace

bool Negotiator::Numeric(const std::string& key, const std::string& value, uint64_t lo, uint64_t hi,
                         uint64_t* out, TextKeys* response) {
  auto n = ParseNumber(value);
  if (!n || *n < lo || *n > hi) {
    response->Add(key, "Reject");
    return false;
  }
  *out = *n;
  return true;
}

bool Negotiator::Respond(const std::string& key, const std::string& value, TextKeys* response) {
  SessionParams& p = *params_;
  uint64_t n = 0;
  if (key == "HeaderDigest" || key == "DataDigest") {
    bool allow = key == "HeaderDigest" ? limits_.allow_header_digest : limits_.allow_data_digest;
    // List negotiation: the first value of the initiator's list we support (§13.1).
    std::string chosen = "Reject";
    for (auto item : SplitList(value)) {
      if (item == "None" || (item == "CRC32C" && allow)) {
        chosen = std::string(item);
        break;
      }
    }
    if (chosen != "Reject")
      (key == "HeaderDigest" ? p.header_digest : p.data_digest) = chosen == "CRC32C";
    response->Add(key, chosen);
  } else if (key == "MaxRecvDataSegmentLength") {
    // Declarative (§13.12): the initiator tells us what it can receive; we answer with ours.
    if (Numeric(key, value, 512, 16777215, &n, response)) {
      p.initiator_max_recv_data_segment_length = static_cast<uint32_t>(n);
      p.target_max_recv_data_segment_length = limits_.max_recv_data_segment_length;
      response->Add(key, std::to_string(limits_.max_recv_data_segment_length));
      declared_mrdsl_ = true;
    }
  } else if (key == "MaxBurstLength") {  // Minimum (§13.13).
    if (Numeric(key, value, 512, 16777215, &n, response)) {
      p.max_burst_length = static_cast<uint32_t>(std::min<uint64_t>(n, limits_.max_burst_length));
      response->Add(key, std::to_string(p.max_burst_length));
    }
  } else if (key == "FirstBurstLength") {  // Minimum (§13.14).
    if (Numeric(key, value, 512, 16777215, &n, response)) {
      p.first_burst_length =
          static_cast<uint32_t>(std::min<uint64_t>(n, limits_.first_burst_length));
      response->Add(key, std::to_string(p.first_burst_length));
    }
  } else if (key == "MaxOutstandingR2T") {  // Minimum (§13.17).
    if (Numeric(key, value, 1, 65535, &n, response)) {
      p.max_outstanding_r2t =
          static_cast<uint16_t>(std::min<uint64_t>(n, limits_.max_outstanding_r2t));
      response->Add(key, std::to_string(p.max_outstanding_r2t));
    }
  } else if (key == "DefaultTime2Wait") {  // Maximum (§13.15).
    if (Numeric(key, value, 0, 3600, &n, response)) {
      p.default_time2wait = static_cast<uint16_t>(std::max<uint64_t>(n, limits_.default_time2wait));
      response->Add(key, std::to_string(p.default_time2wait));
    }
  } else if (key == "DefaultTime2Retain") {  // Minimum (§13.16).
    if (Numeric(key, value, 0, 3600, &n, response)) {
      p.default_time2retain =
          static_cast<uint16_t>(std::min<uint64_t>(n, limits_.default_time2retain));
      response->Add(key, std::to_string(p.default_time2retain));
    }
  } else if (key == "ErrorRecoveryLevel") {  // Minimum (§13.20); we implement level 0 only.
    if (Numeric(key, value, 0, 2, &n, response)) response->Add(key, "0");
  } else if (key == "MaxConnections") {  // Minimum (§13.2); one connection per session.
    if (Numeric(key, value, 1, 65535, &n, response)) response->Add(key, "1");
  } else if (key == "ImmediateData" || key == "InitialR2T" || key == "DataPDUInOrder" ||
             key == "DataSequenceInOrder" || key == "IFMarker" || key == "OFMarker") {
    auto b = ParseBool(value);
    if (!b) {
      response->Add(key, "Reject");
    } else if (key == "ImmediateData") {  // AND (§13.11).
      p.immediate_data = *b && limits_.immediate_data;
      response->Add(key, BoolText(p.immediate_data));
    } else if (key == "InitialR2T") {  // OR (§13.10).
      p.initial_r2t = *b || limits_.initial_r2t;
      response->Add(key, BoolText(p.initial_r2t));
    } else if (key == "DataPDUInOrder" || key == "DataSequenceInOrder") {
      response->Add(key, "Yes");  // OR with our Yes (§13.18, §13.19): we need ordered data.
    } else {
      response->Add(key, "No");  // Markers: AND with our No (RFC 7143 §13.25, obsoleted).
    }
  } else if (key == "IFMarkInt" || key == "OFMarkInt") {
    response->Add(key, "Irrelevant");
  } else if (key == "InitiatorAlias") {
    // Declarative; nothing to answer.
  } else {
    return false;
  }
  return true;
}

void Negotiator::Finish(TextKeys* response) {
  SessionParams& p = *params_;
  p.first_burst_length = std::min(p.first_burst_length, p.max_burst_length);
  if (!declared_mrdsl_) {
    p.target_max_recv_data_segment_length = limits_.max_recv_data_segment_length;
    response->Add("MaxRecvDataSegmentLength", std::to_string(limits_.max_recv_data_segment_length));
    declared_mrdsl_ = true;
  }
}

}  // namespace vios::iscsi
