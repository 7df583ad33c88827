// PeerFanout: this member's messages to every peer, in order (peer_fanout.h).
#include "node-agent/peer/peer_fanout.h"

#include "common/log/log.h"

namespace vios::agent::peer {

std::vector<events::MessageType> DefaultFanoutTypes() {
  using events::MessageType;
  return {MessageType::kPathLost, MessageType::kPathDegraded, MessageType::kPathRestored,
          MessageType::kRerouteStarted, MessageType::kRerouteEnded};
}

PeerFanout::PeerFanout(PeerFanoutOptions options, events::EventBus& bus)
    : options_(std::move(options)), bus_(bus) {
  worker_ = std::thread([this] { Run(); });
  for (events::MessageType t : options_.types) {
    registrations_.push_back(
        bus_.RegisterListener(t, "peer-fanout", [this](const events::Message& m) { Enqueue(m); }));
  }
}

PeerFanout::~PeerFanout() {
  for (events::RegistrationId id : registrations_) {
    bus_.Unregister(id);
  }
  // A delivery to our listener may still be running on a bus thread; wait it out.
  bus_.Flush();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void PeerFanout::Enqueue(const events::Message& m) {
  if (m.source != options_.member) {
    return;  // delivered from a peer (or relayed): never sent on again
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return;
    }
    if (queue_.size() >= options_.max_queue) {
      ++dropped_;
      return;
    }
    queue_.push_back(m);
  }
  cv_.notify_one();
}

PeerClient& PeerFanout::ClientFor(const PeerTarget& t) {
  const std::string key = t.name + "@" + t.address;
  auto it = clients_.find(key);
  if (it == clients_.end()) {
    it =
        clients_
            .emplace(key,
                     std::make_unique<PeerClient>(PeerClientOptions{.address = t.address,
                                                                    .server_name = t.name,
                                                                    .member = options_.member,
                                                                    .tls = options_.tls,
                                                                    .deadline = options_.deadline}))
            .first;
  }
  return *it->second;
}

void PeerFanout::Run() {
  while (true) {
    events::Message m;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;
      }
      m = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<PeerTarget> targets = options_.peers ? options_.peers() : std::vector<PeerTarget>{};
    for (const PeerTarget& t : targets) {
      try {
        ClientFor(t).Deliver(m);
        ++sent_;
      } catch (const std::exception& e) {
        ++failed_;
        VIOS_LOG(kWarning, "could not deliver a cluster message to a peer")
            .Field("peer", t.name)
            .Field("type", std::string(events::MessageTypeName(m.type)))
            .Field("error", e.what());
      }
    }
  }
}

}  // namespace vios::agent::peer
