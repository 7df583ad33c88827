#include "common/events/message.h"

namespace vios::events {

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kMemberJoined:
      return "MemberJoined";
    case MessageType::kMemberDown:
      return "MemberDown";
    case MessageType::kMemberUp:
      return "MemberUp";
    case MessageType::kMemberLeft:
      return "MemberLeft";
    case MessageType::kPathLost:
      return "PathLost";
    case MessageType::kPathDegraded:
      return "PathDegraded";
    case MessageType::kPathRestored:
      return "PathRestored";
    case MessageType::kRerouteStarted:
      return "RerouteStarted";
    case MessageType::kRerouteEnded:
      return "RerouteEnded";
    case MessageType::kReservationChanged:
      return "ReservationChanged";
    case MessageType::kConfigChanged:
      return "ConfigChanged";
    case MessageType::kPortCreated:
      return "PortCreated";
    case MessageType::kPortDeleted:
      return "PortDeleted";
    case MessageType::kVolumeAttached:
      return "VolumeAttached";
    case MessageType::kVolumeDetached:
      return "VolumeDetached";
  }
  return "Unknown";
}

std::optional<MessageType> ParseMessageType(std::string_view name) {
  for (MessageType type : kAllMessageTypes) {
    if (MessageTypeName(type) == name) return type;
  }
  return std::nullopt;
}

bool IsWarning(MessageType type) {
  switch (type) {
    case MessageType::kMemberDown:
    case MessageType::kPathLost:
    case MessageType::kPathDegraded:
    case MessageType::kRerouteStarted:
      return true;
    default:
      return false;
  }
}

}  // namespace vios::events
