// Unit tests of the cluster parts that need no API server: the status.reservation layout, the
// peer update, Apply ordering, the lease on the local copy (fencing when unconfirmed), the lease
// wait when peers do not confirm, and the metric families. Two agents share one
// MemoryPrStateStore here; kube_pr_integration_test.cc runs the same against kube-apiserver.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "node-agent/reservation/pr_cluster_test_util.h"
#include "node-agent/reservation/pr_crd_layout.h"
#include "node-agent/reservation/pr_metrics.h"

namespace vios::reservation {
namespace {

using namespace std::chrono_literals;
using testing::Agent;
using testing::InProcessNotifier;
using testing::NexusOn;

const std::string kPortA = "iqn.2026-11.dev.vios:vol-a,t,0x1";
const std::string kPortB = "iqn.2026-11.dev.vios:vol-b,t,0x1";

// FlakyStore: a shared MemoryPrStateStore that can be made unreachable.
class FlakyStore final : public PrStateStore {
 public:
  FlakyStore(MemoryPrStateStore* inner, std::atomic<bool>* down) : inner_(inner), down_(down) {}
  bool Load(StoredPrState* out, std::string* error) override {
    if (down_->load()) {
      *error = "store unreachable";
      return false;
    }
    return inner_->Load(out, error);
  }
  CasResult CompareAndSwap(uint64_t expected, const PrState& next, uint64_t* version,
                           std::string* error) override {
    if (down_->load()) {
      *error = "store unreachable";
      return CasResult::kError;
    }
    return inner_->CompareAndSwap(expected, next, version, error);
  }

 private:
  MemoryPrStateStore* inner_;
  std::atomic<bool>* down_;
};

PrPort PortOf(int i, const std::string& target) { return PrPort::FromNexus(NexusOn(i, target)); }

TEST(PrCrdLayoutTest, PortKeyRoundTripsAndResistsHostileNames) {
  PrPort port = PortOf(3, kPortA);
  port.relativeTargetPort = 7;
  const std::string key = PortKey(port);
  EXPECT_EQ(key, port.InitiatorPort() + "|" + kPortA + "|7");
  std::optional<PrPort> back = PortFromKey(key);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, port);
  EXPECT_EQ(back->relativeTargetPort, 7);

  // An initiator name with the separator in it cannot move the target port.
  PrPort hostile = port;
  hostile.initiatorName = "iqn.evil|" + kPortB + "|1,i,0x000000000000";
  back = PortFromKey(PortKey(hostile));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->targetPort, kPortA);
  EXPECT_EQ(back->initiatorName, hostile.initiatorName);

  for (const char* bad : {"", "|", "a|b", "iqn.x,i,0x123|t|1", "iqn.x,i,0x0000000000zz|t|1",
                          "iqn.x,i,0x000000000001||1", "iqn.x,i,0x000000000001|t|70000",
                          "iqn.x,i,0x000000000001|t|", ",i,0x000000000001|t|1"}) {
    EXPECT_FALSE(PortFromKey(bad).has_value()) << bad;
  }
}

TEST(PrCrdLayoutTest, EveryTypeRoundTripsThroughTheCrdLayout) {
  for (uint8_t code : {1, 3, 5, 6, 7, 8}) {
    PrState s;
    s.generation = 42;
    s.aptpl = code == 5;
    s.registrations.push_back({PortOf(1, kPortA), 0xFFFFFFFFFFFFFFFFull});
    s.registrations.push_back({PortOf(2, kPortB), 0x11});
    s.type = static_cast<PrType>(code);
    if (!IsAllRegistrantsType(s.type)) {
      s.holder = PortOf(2, kPortB);
    }
    const nlohmann::json j = ToCrdJson(s);
    EXPECT_EQ(j["registrations"][0]["key"], "ffffffffffffffff");
    EXPECT_EQ(j["type"], TypeName(s.type));
    EXPECT_TRUE(j["holder"].is_string()) << "the CRD requires a holder with a type";
    std::string error;
    std::optional<PrState> back = PrStateFromCrdJson(j, &error);
    ASSERT_TRUE(back.has_value()) << error;
    EXPECT_EQ(*back, s) << j.dump();
  }
  PrState spc2;
  spc2.spc2Holder = PortOf(4, kPortA);
  std::string error;
  const nlohmann::json j = ToCrdJson(spc2);
  EXPECT_TRUE(j["type"].is_null()) << "null deletes the stored type in a merge patch";
  EXPECT_EQ(PrStateFromCrdJson(j, &error), spc2);
  EXPECT_EQ(PrStateFromCrdJson(nlohmann::json(), &error), PrState{}) << "no status yet";
}

TEST(PrCrdLayoutTest, MalformedStatusIsRejectedWithoutThrowing) {
  const nlohmann::json port = PortKey(PortOf(1, kPortA));
  const nlohmann::json bad[] = {
      "x",
      {{"generation", -1}},
      {{"generation", 4294967296ull}},
      {{"aptpl", "yes"}},
      {{"registrations", "none"}},
      {{"registrations", {{{"port", port}, {"key", "0x11"}}}}},
      {{"registrations", {{{"port", "nonsense"}, {"key", "0000000000000011"}}}}},
      {{"type", "Shared"}, {"holder", port}},
      {{"type", "WriteExclusive"}},
      {{"type", "WriteExclusive"}, {"holder", ""}},
      {{"holder", 5}},
  };
  for (const nlohmann::json& j : bad) {
    std::string error;
    EXPECT_FALSE(PrStateFromCrdJson(j, &error).has_value()) << j.dump();
    EXPECT_FALSE(error.empty());
  }
}

TEST(PrCrdLayoutTest, PeerUpdateRoundTrips) {
  PrUpdate u;
  u.state.registrations.push_back({PortOf(2, kPortB), 0x22});
  u.state.generation = 9;
  u.unit_attentions.push_back({PortOf(1, kPortA), kAscRegistrationsPreempted});
  u.aborted.push_back(PortOf(1, kPortA));
  std::string error;
  std::optional<PrUpdate> back = DecodeUpdate(EncodeUpdate(u), &error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(back->state, u.state);
  ASSERT_EQ(back->unit_attentions.size(), 1u);
  EXPECT_EQ(back->unit_attentions[0].port, u.unit_attentions[0].port);
  EXPECT_EQ(back->unit_attentions[0].asc.ascq, 0x05);
  ASSERT_EQ(back->aborted.size(), 1u);
  EXPECT_EQ(back->aborted[0], u.aborted[0]);
  for (const char* bad : {"", "[]", "{}", R"({"reservation":{},"aborted":[1]})",
                          R"({"reservation":{},"unitAttentions":[{"port":"x","asc":1,"ascq":2}]})",
                          R"({"reservation":{},"unitAttentions":[{"asc":300}]})"}) {
    EXPECT_FALSE(DecodeUpdate(bad, &error).has_value()) << bad;
  }
}

class PrClusterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Agent> MakeAgent(const std::string& port, ClusterOptions options,
                                   std::atomic<bool>* down) {
    auto agent = std::make_unique<Agent>(port, std::make_unique<FlakyStore>(&store_, down),
                                         std::move(options));
    std::string error;
    EXPECT_TRUE(agent->pr->Init(&error)) << error;
    return agent;
  }
  void Wire() {
    to_b_.SetPeers({b_->pr.get()});
    to_a_.SetPeers({a_->pr.get()});
  }
  ClusterOptions Options(InProcessNotifier* notifier, std::chrono::milliseconds lease = 10s) {
    return ClusterOptions{.volume = "vol",
                          .notifier = notifier,
                          .lease = lease,
                          .refresh_interval = 0ms,
                          .lease_margin = 100ms};
  }

  MemoryPrStateStore store_;
  std::atomic<bool> a_down_{false};
  std::atomic<bool> b_down_{false};
  InProcessNotifier to_b_;  // A's notifier: reaches B.
  InProcessNotifier to_a_;  // B's notifier: reaches A.
  std::unique_ptr<Agent> a_;
  std::unique_ptr<Agent> b_;
};

TEST_F(PrClusterTest, ReservationOnBFencesUnregisteredWriterOnA) {
  a_ = MakeAgent(kPortA, Options(&to_b_), &a_down_);
  b_ = MakeAgent(kPortB, Options(&to_a_), &b_down_);
  Wire();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kReserve, 0x22, 0, 5), scsi::Status::kGood);
  EXPECT_EQ(a_->pr->State(), b_->pr->State());
  EXPECT_EQ(a_->Io(3, 0x2A), scsi::Status::kReservationConflict) << "unregistered on A";
  EXPECT_EQ(a_->Io(3, 0x28), scsi::Status::kGood) << "WERO lets everyone read";
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood) << "registrant on A";
  EXPECT_EQ(a_->pr->counters().notify_count.load(), 1u);
  EXPECT_EQ(b_->pr->counters().notify_count.load(), 2u);
}

TEST_F(PrClusterTest, ApplyIgnoresOlderVersionsButDeliversTheirEvents) {
  a_ = MakeAgent(kPortA, Options(nullptr), &a_down_);
  PrUpdate newer;
  newer.state.generation = 5;
  PrUpdate older;
  older.state.generation = 4;
  older.unit_attentions.push_back({PortOf(1, kPortA), kAscReservationsPreempted});
  std::string error;
  ASSERT_TRUE(a_->pr->Apply(10, EncodeUpdate(newer), &error)) << error;
  ASSERT_TRUE(a_->pr->Apply(9, EncodeUpdate(older), &error)) << error;
  EXPECT_EQ(a_->pr->State().generation, 5u);
  EXPECT_EQ(a_->pr->Version(), 10u);
  EXPECT_EQ(a_->UaCount(), 1u);
  EXPECT_FALSE(a_->pr->Apply(11, "{garbage", &error));
  EXPECT_EQ(a_->pr->Version(), 10u);

  nlohmann::json object{{"metadata", {{"resourceVersion", "12"}}},
                        {"status", {{"reservation", {{"generation", 6}}}}}};
  ASSERT_TRUE(a_->pr->ApplyVolume(object, &error)) << error;
  EXPECT_EQ(a_->pr->State().generation, 6u);
  object["metadata"]["resourceVersion"] = "11";
  object["status"]["reservation"]["generation"] = 1;
  ASSERT_TRUE(a_->pr->ApplyVolume(object, &error));
  EXPECT_EQ(a_->pr->State().generation, 6u) << "older object ignored";
}

TEST_F(PrClusterTest, UnconfirmedCopyFencesEveryWriterAndPrinIsRetryable) {
  a_ = MakeAgent(kPortA, Options(nullptr, 300ms), &a_down_);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->Io(2, 0x2A), scsi::Status::kGood) << "no reservation, confirmed copy";
  a_down_ = true;
  std::this_thread::sleep_for(350ms);
  EXPECT_FALSE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->Io(2, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->Io(2, 0x28), scsi::Status::kReservationConflict);
  EXPECT_GE(a_->pr->counters().stale_refusals.load(), 3u);
  auto prin = a_->Prin(1, PrinAction::kReadKeys);
  EXPECT_EQ(prin->task.status, scsi::Status::kCheckCondition);
  EXPECT_EQ(prin->SenseKey(), static_cast<uint8_t>(scsi::SenseKey::kAbortedCommand));
  auto prout = a_->Prout(1, ProutAction::kRegister, 0x11, 0x12);
  ASSERT_TRUE(prout->Wait());
  EXPECT_EQ(prout->SenseKey(), static_cast<uint8_t>(scsi::SenseKey::kAbortedCommand));
  a_down_ = false;
  std::string error;
  ASSERT_TRUE(a_->pr->Refresh(&error)) << error;
  EXPECT_TRUE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(2, 0x2A), scsi::Status::kGood);
  EXPECT_EQ(a_->pr->State().registrations.size(), 1u);
}

TEST_F(PrClusterTest, StartingWithTheStoreUnreachableIsFencedUntilConfirmed) {
  // An agent restarted during an API outage: Init succeeds, but nothing is permitted on a copy
  // nobody confirmed; TEST UNIT READY still passes; the first successful read lifts the fence.
  a_down_ = true;
  a_ = MakeAgent(kPortA, Options(nullptr), &a_down_);
  EXPECT_FALSE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->Io(1, 0x00), scsi::Status::kGood);
  a_down_ = false;
  std::string error;
  ASSERT_TRUE(a_->pr->Refresh(&error)) << error;
  EXPECT_TRUE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood);
}

TEST_F(PrClusterTest, UnconfirmedPeerWaitsOutTheLeaseBeforeGood) {
  a_ = MakeAgent(kPortA, Options(&to_b_, 400ms), &a_down_);
  b_ = MakeAgent(kPortB, Options(&to_a_, 400ms), &b_down_);
  Wire();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kReserve, 0x11, 0, 1), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  // A is cut from the store and from B: it keeps its (soon stale) copy.
  a_down_ = true;
  to_a_.SetCut(true);
  to_b_.SetCut(true);
  const auto start = std::chrono::steady_clock::now();
  auto preempt = b_->Prout(2, ProutAction::kPreempt, 0x22, 0x11, 1);
  preempt->on_done = [this] {
    // At B's completion A must no longer let initiator 1 write.
    EXPECT_FALSE(a_->pr->Confirmed());
  };
  ASSERT_TRUE(preempt->Wait());
  EXPECT_EQ(preempt->task.status, scsi::Status::kGood);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms) << "lease waited out";
  EXPECT_EQ(b_->pr->counters().notify_failures.load(), 1u);
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_EQ(a_->pr->State().holder, PortOf(1, kPortA)) << "A's copy is stale, and unused";
  a_down_ = false;
  std::string error;
  ASSERT_TRUE(a_->pr->Refresh(&error)) << error;
  EXPECT_EQ(a_->pr->State(), b_->pr->State());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict) << "fenced for real now";
}

TEST_F(PrClusterTest, ApiServerDownEverywhereButPeersReachableKeepsServing) {
  a_ = MakeAgent(kPortA, Options(&to_b_, 300ms), &a_down_);
  b_ = MakeAgent(kPortB, Options(&to_a_, 300ms), &b_down_);
  Wire();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kReserve, 0x22, 0, 5), scsi::Status::kGood);
  a_down_ = true;
  b_down_ = true;
  // No one can change the state now; every peer answering confirms A's copy.
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    std::string error;
    EXPECT_TRUE(a_->pr->Refresh(&error)) << error;
    EXPECT_TRUE(b_->pr->Refresh(&error)) << error << " (B vouches for A only while confirmed)";
  }
  EXPECT_TRUE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood) << "registrant, WERO";
  EXPECT_EQ(a_->Io(3, 0x2A), scsi::Status::kReservationConflict);
  EXPECT_GE(a_->pr->counters().store_errors.load(), 5u);
  // Nobody refreshes: both leases run out, and unconfirmed copies do not vouch for each other.
  std::this_thread::sleep_for(350ms);
  std::string error;
  EXPECT_FALSE(a_->pr->Refresh(&error));
  EXPECT_NE(error.find("not confirmed"), std::string::npos) << error;
  EXPECT_FALSE(b_->pr->Refresh(&error));
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  // B reaches the store again; A (still cut) is confirmed through B...
  b_down_ = false;
  EXPECT_TRUE(b_->pr->Refresh(&error)) << error;
  EXPECT_TRUE(a_->pr->Refresh(&error)) << error;
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kGood);
  // ...until B does not answer: no confirmation, and after the lease no writes.
  to_b_.SetCut(true);
  error.clear();
  EXPECT_FALSE(a_->pr->Refresh(&error));
  EXPECT_NE(error.find("peer unreachable"), std::string::npos) << error;
  std::this_thread::sleep_for(350ms);
  EXPECT_FALSE(a_->pr->Confirmed());
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
}

TEST_F(PrClusterTest, CollectorExportsTheAgreedFamilies) {
  a_ = MakeAgent(kPortA, Options(&to_b_), &a_down_);
  b_ = MakeAgent(kPortB, Options(&to_a_), &b_down_);
  Wire();
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kRegister, 0, 0x11), scsi::Status::kGood);
  EXPECT_EQ(a_->ProutWait(1, ProutAction::kReserve, 0x11, 0, 1), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kRegister, 0, 0x22), scsi::Status::kGood);
  EXPECT_EQ(b_->ProutWait(2, ProutAction::kPreemptAndAbort, 0x22, 0x11, 1), scsi::Status::kGood);
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
  {
    std::lock_guard<std::mutex> lock(a_->mu);
    ASSERT_EQ(a_->aborted.size(), 1u) << "A aborts its preempted nexus's tasks";
    EXPECT_EQ(a_->aborted[0], PortOf(1, kPortA));
  }

  PrCollector collector;
  collector.Add("vol-a", std::shared_ptr<const LocalPersistentReservations>(
                             a_->pr.get(), [](const LocalPersistentReservations*) {}));
  collector.Add("vol-b", std::shared_ptr<const LocalPersistentReservations>(
                             b_->pr.get(), [](const LocalPersistentReservations*) {}));
  std::set<std::string> names;
  double a_register = -1;
  double b_preemptions = -1;
  double a_conflicts = -1;
  uint64_t notify_count = 0;
  for (const auto& family : collector.Collect()) {
    names.insert(family.name);
    for (const auto& m : family.metric) {
      auto label = [&](const std::string& k) {
        for (const auto& l : m.label) {
          if (l.name == k) return l.value;
        }
        return std::string();
      };
      if (family.name == "vios_pr_operations_total" && label("volume") == "vol-a" &&
          label("service_action") == "register") {
        a_register = m.counter.value;
      }
      if (family.name == "vios_pr_preemptions_total" && label("volume") == "vol-b") {
        b_preemptions = m.counter.value;
      }
      if (family.name == "vios_pr_conflicts_total" && label("volume") == "vol-a") {
        a_conflicts = m.counter.value;
      }
      if (family.name == "vios_pr_notify_latency_seconds") {
        notify_count = m.histogram.sample_count;
      }
    }
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"vios_pr_operations_total", "vios_pr_conflicts_total",
                                   "vios_pr_preemptions_total", "vios_pr_notify_latency_seconds",
                                   "vios_pr_store_errors_total", "vios_pr_store_conflicts_total"}));
  EXPECT_EQ(a_register, 1);
  EXPECT_EQ(b_preemptions, 1);
  EXPECT_EQ(a_conflicts, 1);
  EXPECT_EQ(notify_count, 4u);
  collector.Remove("vol-b");
  EXPECT_EQ(collector.Collect()[1].metric.size(), 1u);
}

}  // namespace
}  // namespace vios::reservation

namespace vios::reservation {
namespace {

// RESERVE(6) through B while the holder's nexus on A is going away: B's conflict waits for A's
// release (issued after B's command arrived) instead of answering from the copy it had.
TEST_F(PrClusterTest, Spc2ReserveWaitsForARemoteHolderBeingReleased) {
  a_ = MakeAgent(kPortA, Options(&to_b_), &a_down_);
  b_ = MakeAgent(kPortB, Options(&to_a_), &b_down_);
  Wire();
  const std::vector<uint8_t> reserve6{kOpReserve6, 0, 0, 0, 0, 0};
  auto reserve = [](Agent& agent, int i, const std::vector<uint8_t>& cdb) {
    auto t =
        std::make_unique<testing::WaitTask>(cdb, 0, std::vector<uint8_t>{}, NexusOn(i, agent.port));
    agent.lu->Execute(&t->task);
    return t;
  };
  auto held = reserve(*a_, 1, reserve6);
  ASSERT_TRUE(held->Wait());
  ASSERT_EQ(held->task.status, scsi::Status::kGood);
  ASSERT_TRUE(b_->pr->State().spc2Holder.has_value()) << "shared with B";

  // Nobody releases: B's RESERVE conflicts after the grace.
  auto start = std::chrono::steady_clock::now();
  auto refused = reserve(*b_, 2, reserve6);
  ASSERT_TRUE(refused->Wait());
  EXPECT_EQ(refused->task.status, scsi::Status::kReservationConflict);
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            LocalPersistentReservations::kSpc2Grace - 50ms);
  EXPECT_EQ(b_->Io(2, 0x2A), scsi::Status::kReservationConflict);

  // The holder's nexus goes away on A just after B's RESERVE arrived: B's RESERVE succeeds.
  start = std::chrono::steady_clock::now();
  auto taken = reserve(*b_, 2, reserve6);
  std::this_thread::sleep_for(100ms);
  a_->pr->NexusRemoved(NexusOn(1, kPortA));
  ASSERT_TRUE(taken->Wait());
  EXPECT_EQ(taken->task.status, scsi::Status::kGood);
  EXPECT_LT(std::chrono::steady_clock::now() - start, LocalPersistentReservations::kSpc2Grace);
  EXPECT_TRUE(a_->pr->State().spc2Holder.has_value());
  EXPECT_TRUE(a_->pr->State().spc2Holder->Matches(NexusOn(2, kPortB)));
  EXPECT_EQ(a_->Io(1, 0x2A), scsi::Status::kReservationConflict);
}

}  // namespace
}  // namespace vios::reservation
