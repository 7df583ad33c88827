// EventBus: typed cluster messages dispatched to registered handlers and listeners
// (DESIGN.md §5; seed: "registration information" naming a message type and a handler or listener).
//
//   EventBus bus;
//   bus.RegisterHandler(MessageType::kPathLost, "router", [&](const Message& m) {
//     return router.StartReroute(m.subject) ? HandlerResult::Ok() : HandlerResult::Failed("no
//     peer");
//   });
//   bus.RegisterListener(MessageType::kPathLost, "k8s-events", [&](const Message& m) { ... });
//   bus.Publish({.type = MessageType::kPathLost, .source = "node-a", .subject = "backend/san0"});
//
// Rules:
// - A message type has at most one handler (it acts on the message) and any number of listeners
//   (they observe). A second handler for a type is a registration error.
// - Messages from one source are dispatched in publication order, one at a time; messages from
//   different sources may be dispatched concurrently (one strand per source).
// - A handler or listener that fails (returns Failed or throws) is reported to the failure
//   observer and counted; dispatch of that and later messages goes on.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/events/message.h"

namespace vios::events {

// HandlerResult is what a handler reports back.
struct HandlerResult {
  bool ok = true;
  std::string error;
  static HandlerResult Ok() { return {}; }
  static HandlerResult Failed(std::string why) { return {false, std::move(why)}; }
};

using Handler = std::function<HandlerResult(const Message&)>;
using Listener = std::function<void(const Message&)>;

// DispatchFailure describes one failed delivery.
struct DispatchFailure {
  Message message;
  std::string receiver;  // Registration name.
  bool is_handler = false;
  std::string error;
};

// RegistrationError is thrown for a registration that breaks the rules (duplicate handler,
// empty name).
class RegistrationError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

using RegistrationId = uint64_t;

class EventBus {
 public:
  struct Stats {
    uint64_t published = 0;
    uint64_t handled = 0;
    uint64_t handler_failures = 0;
    uint64_t listener_failures = 0;
    uint64_t unhandled = 0;  // Messages whose type had no handler.
  };

  // workers: threads dispatching; strands keep per-source order whatever the count.
  explicit EventBus(size_t workers = 2);
  ~EventBus();  // Dispatches what is queued, then stops.
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // RegisterHandler throws RegistrationError if `type` already has a handler.
  RegistrationId RegisterHandler(MessageType type, std::string name, Handler handler);
  RegistrationId RegisterListener(MessageType type, std::string name, Listener listener);
  // RegisterListenerForAll registers one listener for every message type (logs, metrics).
  std::vector<RegistrationId> RegisterListenerForAll(const std::string& name,
                                                     const Listener& listener);
  // Unregister removes a registration; deliveries already under way finish. False if unknown.
  bool Unregister(RegistrationId id);

  // SetFailureObserver installs the callback told of every failed delivery (called on a
  // dispatch thread; keep it short).
  void SetFailureObserver(std::function<void(const DispatchFailure&)> observer);

  // Publish queues message for dispatch and returns its per-source sequence number.
  uint64_t Publish(Message message);

  // Flush blocks until every message published before the call has been dispatched.
  void Flush();

  Stats GetStats() const;

 private:
  struct Receiver {
    RegistrationId id;
    std::string name;
    Handler handler;    // Set for handlers.
    Listener listener;  // Set for listeners.
  };
  struct Receivers {
    std::shared_ptr<const Receiver> handler;
    std::vector<std::shared_ptr<const Receiver>> listeners;
  };
  struct Strand {
    std::deque<Message> pending;
    bool scheduled = false;  // In ready_ or being dispatched by a worker.
    uint64_t last_sequence = 0;
  };

  void WorkerLoop();
  void Dispatch(const Message& message);
  void ReportFailure(const Message& message, const Receiver& receiver, bool is_handler,
                     std::string error);

  mutable std::mutex registry_mu_;
  std::unordered_map<MessageType, Receivers> receivers_;          // Guarded by registry_mu_.
  std::function<void(const DispatchFailure&)> failure_observer_;  // Guarded by registry_mu_.
  RegistrationId next_id_ = 1;                                    // Guarded by registry_mu_.

  std::mutex queue_mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::unordered_map<std::string, Strand> strands_;  // Guarded by queue_mu_.
  std::deque<std::string> ready_;                    // Sources with work; guarded by queue_mu_.
  size_t queued_ = 0;                                // Undispatched messages; guarded by queue_mu_.
  bool stopping_ = false;                            // Guarded by queue_mu_.

  std::atomic<uint64_t> published_{0}, handled_{0}, handler_failures_{0}, listener_failures_{0},
      unhandled_{0};
  std::vector<std::thread> workers_;
};

}  // namespace vios::events
