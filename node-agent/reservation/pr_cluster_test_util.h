// Test helpers for cluster-mode reservations: an "agent" (a LogicalUnit over memory with a
// cluster-mode LocalPersistentReservations), tasks that wait for asynchronous completion, and an
// in-process PrPeerNotifier that calls the peers' Apply directly.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/reservation/pr_test_util.h"
#include "node-agent/scsi/logical_unit.h"

namespace vios::reservation::testing {

// NexusOn: initiator i on the given target port (one agent's virtual port).
inline scsi::Nexus NexusOn(int i, const std::string& target_port) {
  scsi::Nexus n = MakeNexus(i);
  n.target_port = target_port;
  return n;
}

// WaitTask: one command whose completion may come from another thread.
class WaitTask : public scsi::TaskCompletion {
 public:
  WaitTask(std::vector<uint8_t> cdb, uint32_t data_in_size, std::vector<uint8_t> out,
           scsi::Nexus nexus)
      : nexus_(std::move(nexus)), in_(data_in_size), out_(std::move(out)) {
    std::copy(cdb.begin(), cdb.end(), task.cdb.begin());
    task.cdb_length = cdb.size();
    task.data_in = std::span<uint8_t>(in_);
    task.data_out = std::span<const uint8_t>(out_);
    task.direction = data_in_size != 0 ? scsi::DataDirection::kRead
                                       : (out_.empty() ? scsi::DataDirection::kNone
                                                       : scsi::DataDirection::kWrite);
    task.expected_transfer_length =
        static_cast<uint32_t>(data_in_size != 0 ? data_in_size : out_.size());
    task.completion = this;
    task.nexus = &nexus_;
  }
  void TaskDone(scsi::Task* t) override {
    EXPECT_EQ(t, &task);
    if (on_done) {
      on_done();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    cv_.notify_all();
  }
  // Wait returns false if the task did not complete within timeout.
  bool Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return done_ > 0; }) && done_ == 1;
  }
  uint8_t SenseKey() const { return task.sense[2] & 0x0F; }
  uint8_t Asc() const { return task.sense[12]; }
  std::vector<uint8_t> DataIn() const {
    return std::vector<uint8_t>(in_.begin(), in_.begin() + task.data_in_length);
  }

  scsi::Task task;
  std::function<void()> on_done;  // Runs inside TaskDone (the "before completion" probe).

 private:
  scsi::Nexus nexus_;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0;
};

// InProcessNotifier: NotifyAll = Apply on every peer (or fails while cut).
class InProcessNotifier final : public PrPeerNotifier {
 public:
  void SetPeers(std::vector<LocalPersistentReservations*> peers) {
    std::lock_guard<std::mutex> lock(mu_);
    peers_ = std::move(peers);
  }
  void SetCut(bool cut) {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = cut;
  }
  bool QueryAll(const std::string& volume, std::vector<PeerState>* states,
                std::string* error) override {
    (void)volume;
    std::vector<LocalPersistentReservations*> peers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cut_) {
        *error = "peer unreachable (cut by the test)";
        return false;
      }
      peers = peers_;
    }
    for (LocalPersistentReservations* peer : peers) {
      PeerState state;
      if (!peer->Current(&state.version, &state.state_json)) {
        *error = "peer copy not confirmed";
        return false;
      }
      states->push_back(std::move(state));
    }
    return true;
  }
  bool NotifyAll(const std::string& volume, uint64_t version, const std::string& state_json,
                 std::string* error) override {
    (void)volume;
    std::vector<LocalPersistentReservations*> peers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cut_) {
        *error = "peer unreachable (cut by the test)";
        return false;
      }
      peers = peers_;
    }
    for (LocalPersistentReservations* peer : peers) {
      if (!peer->Apply(version, state_json, error)) {
        return false;
      }
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::vector<LocalPersistentReservations*> peers_;
  bool cut_ = false;
};

// Agent: one agent's view of the volume: its LU, policy and sinks.
struct Agent {
  // options nullopt: local mode.
  Agent(const std::string& target_port, std::unique_ptr<PrStateStore> store,
        std::optional<ClusterOptions> options)
      : port(target_port), disk(1 << 20, 512) {
    pr = options.has_value()
             ? std::make_unique<LocalPersistentReservations>(std::move(store), std::move(*options))
             : std::make_unique<LocalPersistentReservations>(std::move(store));
    pr->SetUnitAttentionSink([this](const PrUnitAttention& ua) {
      std::lock_guard<std::mutex> lock(mu);
      uas.push_back(ua);
    });
    pr->SetAbortSink([this](const PrPort& p) {
      std::lock_guard<std::mutex> lock(mu);
      aborted.push_back(p);
    });
    scsi::LogicalUnitConfig config;
    config.volume_id = "pr-cluster";
    lu = std::make_unique<scsi::LogicalUnit>(&disk, config, pr.get());
  }

  std::unique_ptr<WaitTask> Prout(int i, ProutAction a, uint64_t key, uint64_t sa_key,
                                  uint8_t type = 0, bool aptpl = false) {
    const auto cdb = ProutCdb(a, type);
    auto t = std::make_unique<WaitTask>(std::vector<uint8_t>(cdb.begin(), cdb.end()), 0,
                                        ProutParams(key, sa_key, aptpl), NexusOn(i, port));
    lu->Execute(&t->task);
    return t;
  }
  // ProutWait runs PR OUT and waits; returns the status.
  scsi::Status ProutWait(int i, ProutAction a, uint64_t key, uint64_t sa_key, uint8_t type = 0,
                         bool aptpl = false) {
    auto t = Prout(i, a, key, sa_key, type, aptpl);
    EXPECT_TRUE(t->Wait());
    return t->task.status;
  }
  std::unique_ptr<WaitTask> Prin(int i, PrinAction a) {
    const auto cdb = PrinCdb(a, 1024);
    auto t = std::make_unique<WaitTask>(std::vector<uint8_t>(cdb.begin(), cdb.end()), 1024,
                                        std::vector<uint8_t>{}, NexusOn(i, port));
    lu->Execute(&t->task);
    EXPECT_TRUE(t->Wait());
    return t;
  }
  // Io runs READ(10) (0x28) or WRITE(10) (0x2A) of one block from initiator i.
  scsi::Status Io(int i, uint8_t opcode) {
    std::vector<uint8_t> cdb{opcode, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    WaitTask t(cdb, opcode == 0x28 ? 512 : 0,
               opcode == 0x2A ? std::vector<uint8_t>(512, 0xAB) : std::vector<uint8_t>{},
               NexusOn(i, port));
    lu->Execute(&t.task);
    EXPECT_TRUE(t.Wait());
    return t.task.status;
  }
  size_t UaCount() {
    std::lock_guard<std::mutex> lock(mu);
    return uas.size();
  }

  std::string port;
  backend::MemoryBackend disk;
  std::unique_ptr<LocalPersistentReservations> pr;
  std::unique_ptr<scsi::LogicalUnit> lu;
  std::mutex mu;
  std::vector<PrUnitAttention> uas;  // Guarded by mu.
  std::vector<PrPort> aborted;       // Guarded by mu.
};

}  // namespace vios::reservation::testing
