// PrPeerNotifier: how an agent that changed a volume's reservation state tells every other agent
// serving the volume before the PR OUT completes (DESIGN.md §7). The agent wires it to the peer
// channel (proto/peer.proto ApplyReservation(volume, version, state_json, from)); the receiving
// agent calls LocalPersistentReservations::Apply(version, state_json) on its policy for volume.
//
//   class PeerChannelNotifier : public reservation::PrPeerNotifier {
//     bool NotifyAll(const std::string& volume, uint64_t version, const std::string& state_json,
//                    std::string* error) override;   // ApplyReservation to each peer, wait
//   };
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vios::reservation {

class PrPeerNotifier {
 public:
  virtual ~PrPeerNotifier() = default;
  // NotifyAll delivers the update (version = the VIOSVolume resourceVersion that holds it;
  // state_json = EncodeUpdate(), pr_crd_layout.h) to every OTHER agent serving volume and returns
  // true once each of them has applied it (their Apply returned true). It must bound its own
  // time (a peer that does not answer within about a second is a failure). false, with *error
  // naming the peers that did not confirm: the caller then waits out the lease (README.md).
  // Called from the policy's worker thread without any policy lock held; may be called
  // concurrently for different volumes.
  virtual bool NotifyAll(const std::string& volume, uint64_t version, const std::string& state_json,
                         std::string* error) = 0;

  // PeerState: one peer's answer to QueryAll (its LocalPersistentReservations::Current()).
  struct PeerState {
    uint64_t version = 0;
    std::string state_json;
  };
  // QueryAll asks every OTHER agent serving volume (every agent that served it within the last
  // lease: a writer that left must still be asked) for its current copy (version and
  // EncodeUpdate text without events, from Current(), which refuses while that agent's own copy
  // is unconfirmed); true only if every one of them answered. Used to confirm
  // the local copy while the API server is unreachable (README.md "Staleness"). Optional: the
  // default says "not possible", and then only the store confirms.
  virtual bool QueryAll(const std::string& volume, std::vector<PeerState>* states,
                        std::string* error) {
    (void)volume;
    (void)states;
    *error = "peer query not supported";
    return false;
  }
};

}  // namespace vios::reservation
