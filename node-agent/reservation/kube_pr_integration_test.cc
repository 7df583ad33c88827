// Cluster reservations against a real kube-apiserver (common/testing ControlPlane): two "agents"
// (cluster-mode LocalPersistentReservations over KubePrStateStore, one VIOSVolume) wired to each
// other through an in-process PrPeerNotifier. Covers: the store's precondition and that it writes
// only status.reservation; register on A + reserve on B fences A's unregistered writer; a PREEMPT
// AND ABORT on B reaches A before B completes; concurrent PR OUTs on both agents lose nothing;
// state survives re-creating both agents and an API server restart; an agent cut from the API
// server (and its peers) stops letting initiators write before the fencing PR OUT completes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/config.h"
#include "common/testing/control_plane.h"
#include "node-agent/reservation/kube_pr_state_store.h"
#include "node-agent/reservation/pr_cluster_test_util.h"
#include "node-agent/reservation/pr_crd_layout.h"

namespace vios::reservation {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Agent;
using testing::InProcessNotifier;
using testing::NexusOn;
namespace res = kube::resources;

const std::string kPortA = "iqn.2026-11.dev.vios:agent-a:vol,t,0x1";
const std::string kPortB = "iqn.2026-11.dev.vios:agent-b:vol,t,0x1";

// SwitchableStore: the real store, or (while cut) the same VIOSVolume through a client whose
// server is a closed loopback port, so the real client's unreachable path runs.
class SwitchableStore final : public PrStateStore {
 public:
  SwitchableStore(std::unique_ptr<PrStateStore> real, std::unique_ptr<PrStateStore> dead,
                  std::atomic<bool>* cut)
      : real_(std::move(real)), dead_(std::move(dead)), cut_(cut) {}
  bool Load(StoredPrState* out, std::string* error) override {
    return (cut_->load() ? dead_ : real_)->Load(out, error);
  }
  CasResult CompareAndSwap(uint64_t expected, const PrState& next, uint64_t* version,
                           std::string* error) override {
    return (cut_->load() ? dead_ : real_)->CompareAndSwap(expected, next, version, error);
  }

 private:
  std::unique_ptr<PrStateStore> real_;
  std::unique_ptr<PrStateStore> dead_;
  std::atomic<bool>* cut_;
};

PrPort PortOf(int i, const std::string& target) { return PrPort::FromNexus(NexusOn(i, target)); }

class KubePrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& cp = vios::testing::SharedControlPlane();
    config_ = kube::LoadKubeconfig(cp.KubeconfigPath());
    admin_ = std::make_shared<kube::Client>(config_);
    static int counter = 0;
    ns_ = "pr-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    admin_->Create(res::kNamespaces, "",
                   {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}});
    admin_->Create(
        res::kVIOSVolumes, ns_,
        {{"apiVersion", "vios.dev/v1alpha1"},
         {"kind", "VIOSVolume"},
         {"metadata", {{"name", "vol"}}},
         {"spec",
          {{"cluster", "local"},
           {"pool", "default"},
           {"size", "128Mi"},
           {"accessModes", {"ReadWriteMany"}},
           {"extents", {{{"backend", "file0"}, {"offset", 0}, {"length", 134217728}}}}}}});
    // Status written by others (the CSI driver): reservation writes must keep it.
    admin_->PatchStatus(
        res::kVIOSVolumes, ns_, "vol",
        {{"status",
          {{"phase", "Attached"},
           {"attachments",
            {{{"node", "node-a"}, {"virtualPortIQN", "iqn.2026-11.dev.vios:a"}},
             {{"node", "node-b"}, {"virtualPortIQN", "iqn.2026-11.dev.vios:b"}}}}}}});
  }

  std::shared_ptr<kube::Client> AgentClient(bool dead = false) {
    kube::Config c = config_;
    if (dead) {
      c.server = "https://127.0.0.1:1";  // Nothing listens: connection refused.
    }
    c.connect_timeout = 1000ms;
    c.request_timeout = 5000ms;
    return std::make_shared<kube::Client>(
        c, kube::RetryPolicy{.max_attempts = 2, .initial_backoff = 50ms, .max_backoff = 100ms});
  }
  std::unique_ptr<PrStateStore> Store(bool dead = false) {
    return std::make_unique<KubePrStateStore>(AgentClient(dead), ns_, "vol");
  }
  ClusterOptions Options(InProcessNotifier* notifier, std::chrono::milliseconds lease = 10s,
                         std::chrono::milliseconds refresh = 3s) {
    return ClusterOptions{.volume = ns_ + "/vol",
                          .notifier = notifier,
                          .lease = lease,
                          .refresh_interval = refresh,
                          .lease_margin = 200ms};
  }
  std::unique_ptr<Agent> Start(const std::string& port, std::unique_ptr<PrStateStore> store,
                               ClusterOptions options) {
    auto agent = std::make_unique<Agent>(port, std::move(store), std::move(options));
    std::string error;
    EXPECT_TRUE(agent->pr->Init(&error)) << error;
    return agent;
  }
  void StartBoth(std::chrono::milliseconds lease = 10s) {
    a_ = Start(kPortA, Store(), Options(&to_b_, lease));
    b_ = Start(kPortB, Store(), Options(&to_a_, lease));
    to_b_.SetPeers({b_->pr.get()});
    to_a_.SetPeers({a_->pr.get()});
  }
  json Volume() { return admin_->Get(res::kVIOSVolumes, ns_, "vol"); }
  PrState Stored() {
    std::string error;
    std::optional<PrState> s = PrStateFromCrdJson(Volume()["status"]["reservation"], &error);
    EXPECT_TRUE(s.has_value()) << error;
    return s.value_or(PrState{});
  }
  void ExpectOthersStatusKept() {
    const json v = Volume();
    EXPECT_EQ(v["status"]["phase"], "Attached");
    EXPECT_EQ(v["status"]["attachments"].size(), 2u);
  }

  kube::Config config_;
  std::shared_ptr<kube::Client> admin_;
  std::string ns_;
  InProcessNotifier to_b_;
  InProcessNotifier to_a_;
  std::unique_ptr<Agent> a_;
  std::unique_ptr<Agent> b_;
};

TEST_F(KubePrTest, StoreWritesOnlyTheReservationWithThePrecondition) {
  KubePrStateStore store(AgentClient(), ns_, "vol");
  StoredPrState current;
  std::string error;
  ASSERT_TRUE(store.Load(&current, &error)) << error;
  EXPECT_EQ(current.state, PrState{});
  EXPECT_EQ(current.version, ParseResourceVersion(Volume()));

  PrState next;
  next.generation = 1;
  next.registrations.push_back({PortOf(1, kPortA), 0xABCDEF0123456789ull});
  next.type = PrType::kWriteExclusiveRegistrantsOnly;
  next.holder = PortOf(1, kPortA);
  uint64_t v1 = 0;
  ASSERT_EQ(store.CompareAndSwap(current.version, next, &v1, &error), CasResult::kOk) << error;
  EXPECT_GT(v1, current.version);
  const json stored = Volume()["status"]["reservation"];
  EXPECT_EQ(stored["registrations"][0]["key"], "abcdef0123456789");
  EXPECT_EQ(stored["registrations"][0]["port"], PortKey(PortOf(1, kPortA)));
  EXPECT_EQ(stored["type"], "WriteExclusiveRegistrantsOnly");
  ExpectOthersStatusKept();

  uint64_t ignored = 0;
  EXPECT_EQ(store.CompareAndSwap(current.version, PrState{}, &ignored, &error),
            CasResult::kConflict)
      << "stale resourceVersion";
  EXPECT_EQ(Stored(), next);

  // Releasing removes type and holder from the object (null in the merge patch).
  PrState released = next;
  released.type = PrType::kNone;
  released.holder.reset();
  uint64_t v2 = 0;
  ASSERT_EQ(store.CompareAndSwap(v1, released, &v2, &error), CasResult::kOk) << error;
  EXPECT_FALSE(Volume()["status"]["reservation"].contains("type"));
  EXPECT_FALSE(Volume()["status"]["reservation"].contains("holder"));
  EXPECT_EQ(Stored(), released);

  KubePrStateStore dead(AgentClient(true), ns_, "vol");
  EXPECT_FALSE(dead.Load(&current, &error));
  EXPECT_NE(error.find(ns_ + "/vol"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(dead.CompareAndSwap(v2, next, &ignored, &error), CasResult::kError);
  EXPECT_FALSE(error.empty());
}

TEST_F(KubePrTest, RegisterOnAReserveOnBFencesUnregisteredWriterOnA) {
  StartBoth();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kReserve, 0x22, 0, 5), scsi::Status::kGood);
  EXPECT_EQ(a_->Io(3, 0x2A), scsi::Status::kReservationConflict) << "unregistered nexus on A";
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood) << "registrant on A (WERO)";
  EXPECT_EQ(b_->Io(4, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->pr->State(), b_->pr->State());
  EXPECT_EQ(a_->pr->Version(), b_->pr->Version());
  EXPECT_EQ(Stored(), b_->pr->State());
  EXPECT_EQ(Stored().holder, PortOf(2, kPortB));
  ExpectOthersStatusKept();
}

TEST_F(KubePrTest, PreemptAndAbortOnBReachesABeforeBCompletes) {
  StartBoth();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kReserve, 0x11, 0, 1), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood);

  const scsi::Nexus fenced = NexusOn(1, kPortA);
  const uint8_t write10[10] = {0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  std::atomic<bool> probed{false};
  auto preempt = b_->Prout(2, ProutAction::kPreemptAndAbort, 0x22, 0x11, 1);
  preempt->on_done = [&] {
    EXPECT_FALSE(a_->pr->Allows(fenced, write10, sizeof(write10)))
        << "A must fence initiator 1 before B's PREEMPT AND ABORT completes";
    std::lock_guard<std::mutex> lock(a_->mu);
    ASSERT_EQ(a_->aborted.size(), 1u) << "A aborts the victim's tasks";
    EXPECT_EQ(a_->aborted[0], PortOf(1, kPortA));
    bool ua = false;
    for (const PrUnitAttention& u : a_->uas) {
      ua = ua || (u.port == PortOf(1, kPortA) && u.asc.asc == 0x2A && u.asc.ascq == 0x05);
    }
    EXPECT_TRUE(ua) << "REGISTRATIONS PREEMPTED posted on A";
    probed = true;
  };
  ASSERT_TRUE(preempt->Wait());
  EXPECT_EQ(preempt->task.status, scsi::Status::kGood);
  EXPECT_TRUE(probed.load());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(Stored().holder, PortOf(2, kPortB));
  EXPECT_EQ(b_->pr->counters().preemptions.load(), 1u);
}

TEST_F(KubePrTest, ConcurrentProutsOnBothAgentsLoseNoRegistration) {
  StartBoth();
  // Someone else's status write moves the resourceVersion: A's first CAS must conflict,
  // reload and recompute.
  admin_->PatchStatus(res::kVIOSVolumes, ns_, "vol", {{"status", {{"phase", "Attached"}}}});
  admin_->PatchStatus(res::kVIOSVolumes, ns_, "vol", {{"status", {{"observedGeneration", 1}}}});
  EXPECT_EQ(a_->ProutWait(100, ProutAction::kRegister, 0, 0x100), scsi::Status::kGood);
  EXPECT_GE(a_->pr->counters().store_conflicts.load(), 1u);

  constexpr int kPerAgent = 12;
  std::vector<std::unique_ptr<testing::WaitTask>> tasks;
  for (int i = 0; i < kPerAgent; ++i) {
    tasks.push_back(a_->Prout(i + 1, ProutAction::kRegister, 0, 0x1000 + i));
    tasks.push_back(b_->Prout(i + 1, ProutAction::kRegisterAndIgnoreExistingKey, 0, 0x2000 + i));
  }
  for (auto& t : tasks) {
    ASSERT_TRUE(t->Wait());
    EXPECT_EQ(t->task.status, scsi::Status::kGood);
  }
  const PrState stored = Stored();
  EXPECT_EQ(stored.registrations.size(), 2u * kPerAgent + 1);
  EXPECT_EQ(stored.generation, 2u * kPerAgent + 1) << "every REGISTER counted once";
  EXPECT_EQ(a_->pr->State(), stored);
  EXPECT_EQ(b_->pr->State(), stored);
  for (int i = 0; i < kPerAgent; ++i) {
    const scsi::Nexus na = NexusOn(i + 1, kPortA);
    const scsi::Nexus nb = NexusOn(i + 1, kPortB);
    ASSERT_NE(stored.Find(na), nullptr);
    ASSERT_NE(stored.Find(nb), nullptr);
    EXPECT_EQ(stored.Find(na)->key, 0x1000u + i);
    EXPECT_EQ(stored.Find(nb)->key, 0x2000u + i);
  }
  std::printf("store conflicts: A %llu, B %llu\n",
              static_cast<unsigned long long>(a_->pr->counters().store_conflicts.load()),
              static_cast<unsigned long long>(b_->pr->counters().store_conflicts.load()));
  ExpectOthersStatusKept();
}

TEST_F(KubePrTest, StateSurvivesAgentRestartsAndAnApiServerRestart) {
  StartBoth();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kReserve, 0x22, 0, 3), scsi::Status::kGood);
  const PrState before = b_->pr->State();
  a_.reset();
  b_.reset();
  vios::testing::SharedControlPlane().RestartApiServer();
  StartBoth();
  EXPECT_EQ(a_->pr->State(), before) << "no APTPL, yet an agent restart is no power loss";
  EXPECT_EQ(b_->pr->State(), before);
  EXPECT_EQ(a_->Io(1, 0x28), scsi::Status::kReservationConflict) << "Exclusive Access kept";
  EXPECT_EQ(b_->Io(2, 0x2A), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0x11, 0x12), scsi::Status::kGood);
  EXPECT_EQ(b_->pr->State().Find(NexusOn(1, kPortA))->key, 0x12u);
}

TEST_F(KubePrTest, AgentCutFromApiServerAndPeersStopsWritesBeforeThePreemptCompletes) {
  std::atomic<bool> a_cut{false};
  constexpr auto kLease = 1500ms;
  a_ = Start(kPortA, std::make_unique<SwitchableStore>(Store(), Store(true), &a_cut),
             Options(&to_b_, kLease, 300ms));
  b_ = Start(kPortB, Store(), Options(&to_a_, kLease, 300ms));
  to_b_.SetPeers({b_->pr.get()});
  to_a_.SetPeers({a_->pr.get()});
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kReserve, 0x11, 0, 1), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);

  a_cut = true;        // A's API server connection refused...
  to_a_.SetCut(true);  // ...B cannot reach A...
  to_b_.SetCut(true);  // ...nor A B.
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood) << "within the lease A still serves";
  const auto start = std::chrono::steady_clock::now();
  const scsi::Nexus fenced = NexusOn(1, kPortA);
  const uint8_t write10[10] = {0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  auto preempt = b_->Prout(2, ProutAction::kPreempt, 0x22, 0x11, 1);
  preempt->on_done = [&] {
    EXPECT_FALSE(a_->pr->Allows(fenced, write10, sizeof(write10)))
        << "A's fenced initiator could still write when B's PREEMPT completed";
  };
  ASSERT_TRUE(preempt->Wait());
  EXPECT_EQ(preempt->task.status, scsi::Status::kGood);
  EXPECT_GE(std::chrono::steady_clock::now() - start, kLease);
  EXPECT_EQ(b_->pr->counters().notify_failures.load(), 1u);
  EXPECT_FALSE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->Io(3, 0x2A), scsi::Status::kReservationConflict) << "every nexus on A";
  auto prin = a_->Prin(1, PrinAction::kReadReservation);
  EXPECT_EQ(prin->SenseKey(), static_cast<uint8_t>(scsi::SenseKey::kAbortedCommand))
      << "no answer from a stale copy; retryable";
  EXPECT_GE(a_->pr->counters().store_errors.load(), 1u);

  a_cut = false;  // Back: the refresher confirms the current state.
  to_b_.SetCut(false);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!a_->pr->Confirmed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(a_->pr->Confirmed());
  EXPECT_EQ(a_->pr->State(), b_->pr->State());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict) << "preempted";
  EXPECT_EQ(a_->Io(3, 0x28), scsi::Status::kGood) << "Write Exclusive: reads pass";
}

}  // namespace
}  // namespace vios::reservation

namespace vios::reservation {
namespace {

// Events: posted on the VIOSVolume by the agent that executed the PR OUT, once.
TEST_F(KubePrTest, ReservationChangesBecomeEventsOnTheVolumeFromTheExecutingAgentOnly) {
  StartBoth();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kReserve, 0x11, 0, 5), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kPreempt, 0x22, 0x11, 3), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kClear, 0x22, 0), scsi::Status::kGood);
  std::map<std::string, int> reasons;
  json preempted;
  for (int i = 0; i < 100; ++i) {
    reasons.clear();
    for (const json& e : admin_->List(res::kEvents, ns_).items) {
      if (e["regarding"].value("name", "") != "vol" ||
          e["regarding"].value("kind", "") != "VIOSVolume") {
        continue;
      }
      ++reasons[e.value("reason", "")];
      if (e.value("reason", "") == "ReservationPreempted") preempted = e;
    }
    if (reasons.size() >= 3) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(reasons["ReservationTaken"], 1);
  EXPECT_EQ(reasons["ReservationPreempted"], 1) << "posted by B only, not by A applying it";
  EXPECT_EQ(reasons["RegistrationsCleared"], 1);
  EXPECT_EQ(reasons.count("ReservationReleased"), 0u);
  EXPECT_EQ(preempted.value("type", ""), "Warning");
  EXPECT_EQ(preempted.value("reportingController", ""), "vios.dev/agent");
  EXPECT_NE(preempted.value("note", "").find(PortOf(1, kPortA).InitiatorPort()), std::string::npos)
      << preempted.dump();
  EXPECT_EQ(preempted["regarding"].value("uid", ""), Volume()["metadata"].value("uid", "x"));
}

}  // namespace
}  // namespace vios::reservation
