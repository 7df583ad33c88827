// Kubernetes Events (events.k8s.io/v1) about our objects, with aggregation of repeats: the same
// event (same object, type, reason, action and note) within the aggregation window does not
// create a new Event but bumps series.count and series.lastObservedTime of the first one.
//
//   kube::EventRecorder events(client, {.reporting_controller = "vios.dev/operator",
//                                       .reporting_instance = pod_name});
//   events.Record(volume, kube::EventType::kWarning, "PathLost", "Reroute",
//                 "backend lun-3 unreachable from node-a, rerouting through node-b");
//
// Recording is best effort: failures are logged, never thrown (an event must not fail a
// reconcile). Thread-safe; calls are synchronous.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "common/kube/clock.h"

namespace vios::kube {

enum class EventType { kNormal, kWarning };

struct EventRecorderOptions {
  std::string reporting_controller;  // e.g. "vios.dev/operator"
  std::string reporting_instance;    // e.g. the pod name
  std::chrono::milliseconds aggregation_window{std::chrono::minutes(6)};
};

// RecordedEvent says what Record wrote.
struct RecordedEvent {
  std::string ns;
  std::string name;
  int64_t count = 1;  // 1 for a new Event, series.count for an aggregated repeat
};

class EventRecorder {
 public:
  EventRecorder(Client& client, EventRecorderOptions options,
                const Clock* clock = RealClock::Instance());

  // Record reports an event about regarding (any object with apiVersion, kind and metadata).
  // Returns nullopt if the API server refused or was unreachable (logged).
  std::optional<RecordedEvent> Record(const nlohmann::json& regarding, EventType type,
                                      const std::string& reason, const std::string& action,
                                      const std::string& note);

  // ObjectReferenceOf builds the core/v1 ObjectReference for an object.
  static nlohmann::json ObjectReferenceOf(const nlohmann::json& obj);

 private:
  struct Series {
    std::string ns;
    std::string name;
    int64_t count = 1;
    Clock::TimePoint last_seen;
  };

  nlohmann::json NewEvent(const nlohmann::json& reference, const std::string& ns, EventType type,
                          const std::string& reason, const std::string& action,
                          const std::string& note) const;
  void PruneLocked(Clock::TimePoint now);

  Client& client_;
  const EventRecorderOptions options_;
  const Clock* clock_;
  std::mutex mu_;  // guards series_; held across the API call so repeats count in order
  std::map<std::string, Series> series_;  // aggregation key -> the Event that stands for it
};

}  // namespace vios::kube
