// ClusterMessage <-> events::Message (peer_message.h).
#include "node-agent/peer/peer_message.h"

#include <chrono>

namespace vios::agent::peer {
namespace {

void CheckSize(const std::string& value, size_t max, const std::string& field) {
  if (value.size() > max) {
    throw MessageError(field + " is " + std::to_string(value.size()) + " bytes, limit " +
                       std::to_string(max));
  }
}

}  // namespace

vios::peer::v1::ClusterMessage ToProto(const events::Message& m) {
  vios::peer::v1::ClusterMessage pm;
  pm.set_type(std::string(events::MessageTypeName(m.type)));
  pm.set_source(m.source);
  pm.set_sequence(m.sequence);
  pm.set_time_unix_nanos(
      std::chrono::duration_cast<std::chrono::nanoseconds>(m.time.time_since_epoch()).count());
  pm.set_subject(m.subject);
  pm.set_text(m.text);
  for (const auto& [k, v] : m.attributes) {
    (*pm.mutable_attributes())[k] = v;
  }
  return pm;
}

events::Message FromProto(const vios::peer::v1::ClusterMessage& pm) {
  events::Message m;
  auto type = events::ParseMessageType(pm.type());
  if (!type) {
    throw MessageError("type: unknown message type \"" + pm.type().substr(0, 64) + "\"");
  }
  m.type = *type;
  if (pm.source().empty()) {
    throw MessageError("source: empty (the sending member must name itself)");
  }
  CheckSize(pm.source(), kMaxNameBytes, "source");
  CheckSize(pm.subject(), kMaxSubjectBytes, "subject");
  CheckSize(pm.text(), kMaxTextBytes, "text");
  if (static_cast<size_t>(pm.attributes_size()) > kMaxAttributes) {
    throw MessageError("attributes: " + std::to_string(pm.attributes_size()) + " entries, limit " +
                       std::to_string(kMaxAttributes));
  }
  m.source = pm.source();
  m.subject = pm.subject();
  m.text = pm.text();
  for (const auto& [k, v] : pm.attributes()) {
    CheckSize(k, kMaxKeyBytes, "attributes key");
    CheckSize(v, kMaxValueBytes, "attributes[" + k.substr(0, 64) + "]");
    m.attributes[k] = v;
  }
  if (pm.time_unix_nanos() > 0) {
    m.time = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(pm.time_unix_nanos())));
  }
  m.sequence = pm.sequence();
  return m;
}

}  // namespace vios::agent::peer
