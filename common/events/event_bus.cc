#include "common/events/event_bus.h"

#include <exception>

#include "common/log/log.h"

namespace vios::events {

EventBus::EventBus(size_t workers) {
  if (workers == 0) workers = 1;
  for (size_t i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

EventBus::~EventBus() {
  {
    std::unique_lock lock(queue_mu_);
    idle_cv_.wait(lock, [this] { return queued_ == 0; });
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

RegistrationId EventBus::RegisterHandler(MessageType type, std::string name, Handler handler) {
  if (name.empty()) throw RegistrationError("event bus: a handler needs a name");
  if (!handler) throw RegistrationError("event bus: handler '" + name + "' is empty");
  std::lock_guard lock(registry_mu_);
  auto& slot = receivers_[type];
  if (slot.handler) {
    throw RegistrationError("event bus: message type " + std::string(MessageTypeName(type)) +
                            " already has handler '" + slot.handler->name + "'; '" + name +
                            "' can register as a listener instead");
  }
  RegistrationId id = next_id_++;
  slot.handler =
      std::make_shared<const Receiver>(Receiver{id, std::move(name), std::move(handler), {}});
  return id;
}

RegistrationId EventBus::RegisterListener(MessageType type, std::string name, Listener listener) {
  if (name.empty()) throw RegistrationError("event bus: a listener needs a name");
  if (!listener) throw RegistrationError("event bus: listener '" + name + "' is empty");
  std::lock_guard lock(registry_mu_);
  RegistrationId id = next_id_++;
  receivers_[type].listeners.push_back(
      std::make_shared<const Receiver>(Receiver{id, std::move(name), {}, std::move(listener)}));
  return id;
}

std::vector<RegistrationId> EventBus::RegisterListenerForAll(const std::string& name,
                                                             const Listener& listener) {
  std::vector<RegistrationId> ids;
  for (MessageType type : kAllMessageTypes) ids.push_back(RegisterListener(type, name, listener));
  return ids;
}

bool EventBus::Unregister(RegistrationId id) {
  std::lock_guard lock(registry_mu_);
  for (auto& [type, slot] : receivers_) {
    if (slot.handler && slot.handler->id == id) {
      slot.handler.reset();
      return true;
    }
    for (auto it = slot.listeners.begin(); it != slot.listeners.end(); ++it) {
      if ((*it)->id == id) {
        slot.listeners.erase(it);
        return true;
      }
    }
  }
  return false;
}

void EventBus::SetFailureObserver(std::function<void(const DispatchFailure&)> observer) {
  std::lock_guard lock(registry_mu_);
  failure_observer_ = std::move(observer);
}

uint64_t EventBus::Publish(Message message) {
  uint64_t sequence;
  bool wake = false;
  {
    std::lock_guard lock(queue_mu_);
    Strand& strand = strands_[message.source];
    sequence = ++strand.last_sequence;
    message.sequence = sequence;
    strand.pending.push_back(std::move(message));
    ++queued_;
    if (!strand.scheduled) {
      strand.scheduled = true;
      ready_.push_back(strand.pending.back().source);
      wake = true;
    }
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  if (wake) work_cv_.notify_one();
  return sequence;
}

void EventBus::Flush() {
  std::unique_lock lock(queue_mu_);
  idle_cv_.wait(lock, [this] { return queued_ == 0; });
}

EventBus::Stats EventBus::GetStats() const {
  return Stats{published_.load(), handled_.load(), handler_failures_.load(),
               listener_failures_.load(), unhandled_.load()};
}

void EventBus::WorkerLoop() {
  std::unique_lock lock(queue_mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
    if (ready_.empty()) return;  // Stopping and nothing left.
    std::string source = std::move(ready_.front());
    ready_.pop_front();
    // The strand stays `scheduled` while this worker owns it, so no other worker can take the
    // same source and reorder its messages.
    Message message = std::move(strands_[source].pending.front());
    strands_[source].pending.pop_front();
    lock.unlock();
    Dispatch(message);
    lock.lock();
    Strand& strand = strands_[source];
    if (strand.pending.empty()) {
      strand.scheduled = false;
    } else {
      ready_.push_back(source);
      work_cv_.notify_one();
    }
    if (--queued_ == 0) idle_cv_.notify_all();
  }
}

void EventBus::Dispatch(const Message& message) {
  Receivers snapshot;
  {
    std::lock_guard lock(registry_mu_);
    if (auto it = receivers_.find(message.type); it != receivers_.end()) snapshot = it->second;
  }
  if (snapshot.handler) {
    HandlerResult result;
    try {
      result = snapshot.handler->handler(message);
    } catch (const std::exception& e) {
      result = HandlerResult::Failed(std::string("threw: ") + e.what());
    } catch (...) {
      result = HandlerResult::Failed("threw a non-standard exception");
    }
    if (result.ok) {
      handled_.fetch_add(1, std::memory_order_relaxed);
    } else {
      handler_failures_.fetch_add(1, std::memory_order_relaxed);
      ReportFailure(message, *snapshot.handler, true, std::move(result.error));
    }
  } else {
    unhandled_.fetch_add(1, std::memory_order_relaxed);
  }
  for (const auto& listener : snapshot.listeners) {
    try {
      listener->listener(message);
    } catch (const std::exception& e) {
      listener_failures_.fetch_add(1, std::memory_order_relaxed);
      ReportFailure(message, *listener, false, std::string("threw: ") + e.what());
    } catch (...) {
      listener_failures_.fetch_add(1, std::memory_order_relaxed);
      ReportFailure(message, *listener, false, "threw a non-standard exception");
    }
  }
}

void EventBus::ReportFailure(const Message& message, const Receiver& receiver, bool is_handler,
                             std::string error) {
  VIOS_LOG(kWarning, "event delivery failed")
      .Field("type", MessageTypeName(message.type))
      .Field("source", message.source)
      .Field("sequence", message.sequence)
      .Field(is_handler ? "handler" : "listener", receiver.name)
      .Field("error", error);
  std::function<void(const DispatchFailure&)> observer;
  {
    std::lock_guard lock(registry_mu_);
    observer = failure_observer_;
  }
  if (!observer) return;
  try {
    observer(DispatchFailure{message, receiver.name, is_handler, std::move(error)});
  } catch (...) {
    // The observer is diagnostics only; its own failure must not stop dispatch.
  }
}

}  // namespace vios::events
