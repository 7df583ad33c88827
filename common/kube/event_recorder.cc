// EventRecorder: events.k8s.io/v1 Events with series aggregation.
#include "common/kube/event_recorder.h"

#include <random>

#include "common/kube/leader_election.h"  // MicroTimeNow
#include "common/log/log.h"

namespace vios::kube {
namespace {

std::string Meta(const nlohmann::json& obj, const char* key) {
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return "";
  auto it = meta->find(key);
  return it != meta->end() && it->is_string() ? it->get<std::string>() : "";
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

constexpr size_t kMaxNote = 1024;  // events.k8s.io/v1 limit on note

}  // namespace

EventRecorder::EventRecorder(Client& client, EventRecorderOptions options, const Clock* clock)
    : client_(client), options_(std::move(options)), clock_(clock) {}

nlohmann::json EventRecorder::ObjectReferenceOf(const nlohmann::json& obj) {
  nlohmann::json ref = nlohmann::json::object();
  if (obj.contains("apiVersion")) ref["apiVersion"] = obj["apiVersion"];
  if (obj.contains("kind")) ref["kind"] = obj["kind"];
  for (const char* key : {"name", "namespace", "uid", "resourceVersion"}) {
    std::string value = Meta(obj, key);
    if (!value.empty()) ref[key] = value;
  }
  return ref;
}

nlohmann::json EventRecorder::NewEvent(const nlohmann::json& reference, const std::string& ns,
                                       EventType type, const std::string& reason,
                                       const std::string& action, const std::string& note) const {
  std::string base = reference.value("name", std::string("event"));
  return {{"apiVersion", "events.k8s.io/v1"},
          {"kind", "Event"},
          {"metadata", {{"name", base + "." + RandomSuffix()}, {"namespace", ns}}},
          {"eventTime", MicroTimeNow()},
          {"reportingController", options_.reporting_controller},
          {"reportingInstance", options_.reporting_instance},
          {"action", action},
          {"reason", reason},
          {"regarding", reference},
          {"note", note.substr(0, kMaxNote)},
          {"type", type == EventType::kWarning ? "Warning" : "Normal"}};
}

void EventRecorder::PruneLocked(Clock::TimePoint now) {
  for (auto it = series_.begin(); it != series_.end();) {
    if (now - it->second.last_seen > options_.aggregation_window) {
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<RecordedEvent> EventRecorder::Record(const nlohmann::json& regarding, EventType type,
                                                   const std::string& reason,
                                                   const std::string& action,
                                                   const std::string& note) {
  nlohmann::json reference = ObjectReferenceOf(regarding);
  std::string ns = reference.value("namespace", std::string("default"));
  // Same object (by uid when known), same type, reason, action and note = the same event.
  std::string key =
      reference.value("uid", std::string()) + "|" + reference.value("kind", std::string()) + "|" +
      ns + "|" + reference.value("name", std::string()) + "|" +
      (type == EventType::kWarning ? "W" : "N") + "|" + reason + "|" + action + "|" + note;
  std::lock_guard<std::mutex> lock(mu_);
  Clock::TimePoint now = clock_->Now();
  PruneLocked(now);
  try {
    auto it = series_.find(key);
    if (it != series_.end()) {
      Series& s = it->second;
      nlohmann::json patch = {
          {"series", {{"count", s.count + 1}, {"lastObservedTime", MicroTimeNow()}}}};
      try {
        client_.Patch(resources::kEvents, s.ns, s.name, patch);
        s.count++;
        s.last_seen = now;
        return RecordedEvent{s.ns, s.name, s.count};
      } catch (const ApiError& e) {
        if (e.kind() != ErrorKind::kNotFound) throw;
        series_.erase(it);  // the Event expired (TTL) or was deleted: start a new one
      }
    }
    nlohmann::json created =
        client_.Create(resources::kEvents, ns, NewEvent(reference, ns, type, reason, action, note));
    Series s{ns, Meta(created, "name"), 1, now};
    series_[key] = s;
    return RecordedEvent{s.ns, s.name, 1};
  } catch (const ApiError& e) {
    VIOS_LOG(kWarning, "cannot record event")
        .Field("reason", reason)
        .Field("object", reference.value("name", std::string()))
        .Field("error", e.what());
    return std::nullopt;
  }
}

}  // namespace vios::kube
