// Conversion between the event bus's Message and the peer channel's ClusterMessage
// (proto/peer.proto), with the bounds a message from the network must respect (DESIGN.md §10:
// input from a peer is checked, never trusted).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include "common/events/message.h"
#include "proto/peer.pb.h"

namespace vios::agent::peer {

// Limits on one delivered message; anything larger is refused with INVALID_ARGUMENT.
inline constexpr size_t kMaxAttributes = 64;
inline constexpr size_t kMaxKeyBytes = 256;
inline constexpr size_t kMaxValueBytes = 4096;
inline constexpr size_t kMaxNameBytes = 253;  // source (a member name)
inline constexpr size_t kMaxSubjectBytes = 512;
inline constexpr size_t kMaxTextBytes = 4096;

// MessageError says why a ClusterMessage was refused.
class MessageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// ToProto encodes m for the wire (m.sequence travels as the sender's sequence number).
vios::peer::v1::ClusterMessage ToProto(const events::Message& m);

// FromProto validates and decodes; throws MessageError naming the field that is wrong.
events::Message FromProto(const vios::peer::v1::ClusterMessage& pm);

}  // namespace vios::agent::peer
