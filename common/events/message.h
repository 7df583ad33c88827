// Cluster messages: the typed events that agents and the operator exchange and dispatch
// (DESIGN.md §5; seed: handlers and listeners registered per cluster message type).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace vios::events {

// MessageType names what happened. The wire names (MessageTypeName) are stable: they travel over
// the peer channel and appear as Kubernetes Event reasons and metric labels.
enum class MessageType : uint8_t {
  kMemberJoined,
  kMemberDown,
  kMemberUp,
  kMemberLeft,
  kPathLost,
  kPathDegraded,
  kPathRestored,
  kRerouteStarted,
  kRerouteEnded,
  kReservationChanged,
  kConfigChanged,
  kPortCreated,
  kPortDeleted,
  kVolumeAttached,
  kVolumeDetached,
};

inline constexpr MessageType kAllMessageTypes[] = {
    MessageType::kMemberJoined,       MessageType::kMemberDown,     MessageType::kMemberUp,
    MessageType::kMemberLeft,         MessageType::kPathLost,       MessageType::kPathDegraded,
    MessageType::kPathRestored,       MessageType::kRerouteStarted, MessageType::kRerouteEnded,
    MessageType::kReservationChanged, MessageType::kConfigChanged,  MessageType::kPortCreated,
    MessageType::kPortDeleted,        MessageType::kVolumeAttached, MessageType::kVolumeDetached,
};

// MessageTypeName returns the stable CamelCase name ("PathLost").
std::string_view MessageTypeName(MessageType type);
// ParseMessageType is the inverse; nullopt for an unknown name (e.g. from a newer peer).
std::optional<MessageType> ParseMessageType(std::string_view name);
// IsWarning tells whether the message reports trouble (Kubernetes Event type Warning).
bool IsWarning(MessageType type);

// Message is one cluster event. `source` identifies the emitter (a member name, "operator");
// messages from one source are dispatched in the order they were published.
struct Message {
  MessageType type = MessageType::kConfigChanged;
  std::string source;
  std::string subject;  // What it is about: "member/node-a", "backend/san0", "volume/pvc-1".
  std::string text;     // Human-readable note.
  std::map<std::string, std::string> attributes;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  uint64_t sequence = 0;  // Set by the bus on Publish: per-source, increasing from 1.
};

}  // namespace vios::events
