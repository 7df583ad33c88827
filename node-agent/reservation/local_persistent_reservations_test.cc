// LocalPersistentReservations inside a real LogicalUnit over a MemoryBackend: fencing of I/O,
// sense for bad input through the LU, unit attention sink, stores (memory, file with APTPL,
// version conflicts recomputed, write errors answered as retryable).
#include "node-agent/reservation/local_persistent_reservations.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node-agent/backend/memory_backend.h"
#include "node-agent/reservation/pr_test_util.h"
#include "node-agent/scsi/logical_unit.h"
#include "node-agent/scsi/scsi_device.h"
#include "node-agent/scsi/scsi_test_util.h"

namespace vios::reservation {
namespace {

using scsi::testing::TestTask;
using testing::MakeNexus;
namespace wire = scsi::wire;

// SharedStore lets two policies use one MemoryPrStateStore (two agents, one database).
class SharedStore final : public PrStateStore {
 public:
  explicit SharedStore(PrStateStore* inner) : inner_(inner) {}
  bool Load(StoredPrState* out, std::string* error) override { return inner_->Load(out, error); }
  CasResult CompareAndSwap(uint64_t expected, const PrState& next, uint64_t* version,
                           std::string* error) override {
    if (fail) {
      *error = "store unavailable";
      return CasResult::kError;
    }
    return inner_->CompareAndSwap(expected, next, version, error);
  }
  bool fail = false;

 private:
  PrStateStore* inner_;
};

class PolicyTest : public ::testing::Test {
 protected:
  PolicyTest() : disk_(1 << 20, 512) {}

  void Build(std::unique_ptr<PrStateStore> store = nullptr) {
    lu_.reset();
    pr_ = std::make_unique<LocalPersistentReservations>(std::move(store));
    std::string error;
    ASSERT_TRUE(pr_->Init(&error)) << error;
    pr_->SetUnitAttentionSink([this](const PrUnitAttention& ua) { uas_.push_back(ua); });
    scsi::LogicalUnitConfig config;
    config.volume_id = "pr-unit";
    lu_ = std::make_unique<scsi::LogicalUnit>(&disk_, config, pr_.get());
  }

  // Prout runs PR OUT through the LU from initiator i.
  std::unique_ptr<TestTask> Prout(int i, ProutAction a, uint64_t key, uint64_t sa_key,
                                  uint8_t type = 0, bool aptpl = false, uint32_t length = 24) {
    const auto cdb = testing::ProutCdb(a, type, length);
    auto t = std::make_unique<TestTask>(std::initializer_list<uint8_t>{}, 0,
                                        testing::ProutParams(key, sa_key, aptpl));
    std::copy(cdb.begin(), cdb.end(), t->task.cdb.begin());
    t->task.cdb_length = 10;
    t->nexus = MakeNexus(i);
    t->Run(*lu_);
    return t;
  }
  std::unique_ptr<TestTask> Io(int i, uint8_t opcode) {
    auto t = std::make_unique<TestTask>(
        std::initializer_list<uint8_t>{opcode, 0, 0, 0, 0, 0, 0, 0, 1, 0}, opcode == 0x28 ? 512 : 0,
        opcode == 0x2A ? std::vector<uint8_t>(512, 0xAB) : std::vector<uint8_t>{});
    t->task.cdb_length = 10;
    t->nexus = MakeNexus(i);
    t->Run(*lu_);
    return t;
  }

  backend::MemoryBackend disk_;
  std::unique_ptr<LocalPersistentReservations> pr_;
  std::unique_ptr<scsi::LogicalUnit> lu_;
  std::vector<PrUnitAttention> uas_;
};

TEST_F(PolicyTest, WriteExclusiveFencesOtherWritersButNotReaders) {
  Build();
  EXPECT_EQ(Io(2, 0x2A)->task.status, scsi::Status::kGood) << "no reservation: open";
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  EXPECT_GOOD(*Prout(1, ProutAction::kReserve, 0x11, 0, 1));
  EXPECT_EQ(Io(2, 0x2A)->task.status, scsi::Status::kReservationConflict);
  EXPECT_EQ(Io(2, 0x28)->task.status, scsi::Status::kGood);
  EXPECT_EQ(Io(1, 0x2A)->task.status, scsi::Status::kGood);
  EXPECT_EQ(pr_->counters().conflicts.load(), 1u);
}

TEST_F(PolicyTest, BadInputThroughTheLogicalUnitChangesNothing) {
  Build();
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  const PrState before = pr_->State();
  auto t = Prout(1, ProutAction::kRegister, 0x11, 0x12, 0, false, 23);
  EXPECT_SENSE(*t, scsi::SenseKey::kIllegalRequest, 0x1A, 0x00);
  t = Prout(1, ProutAction::kReserve, 0x11, 0, 2);
  EXPECT_SENSE(*t, scsi::SenseKey::kIllegalRequest, 0x24, 0x00);
  t = Prout(2, ProutAction::kReserve, 0x11, 0, 1);
  EXPECT_EQ(t->task.status, scsi::Status::kReservationConflict);
  EXPECT_EQ(pr_->State(), before);
}

TEST_F(PolicyTest, ReadKeysThroughTheLogicalUnit) {
  Build();
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  EXPECT_GOOD(*Prout(2, ProutAction::kRegister, 0, 0x22));
  TestTask t({kOpPersistentReserveIn, 0, 0, 0, 0, 0, 0, 0, 12, 0}, 64);
  t.task.cdb_length = 10;
  t.nexus = MakeNexus(3);
  t.Run(*lu_);
  EXPECT_GOOD(t);
  ASSERT_EQ(t.DataIn().size(), 12u);  // Allocation length 12 of 24 bytes.
  EXPECT_EQ(wire::Load32(&t.in[4]), 16u);
  EXPECT_EQ(wire::Load32(&t.in[8]), 0u);  // High half of key 0x11.
}

TEST_F(PolicyTest, PreemptPostsUnitAttentionsAndAbortList) {
  Build();
  std::vector<PrPort> aborted;
  pr_->SetAbortSink([&](const PrPort& p) { aborted.push_back(p); });
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  EXPECT_GOOD(*Prout(2, ProutAction::kRegister, 0, 0x22));
  EXPECT_GOOD(*Prout(1, ProutAction::kReserve, 0x11, 0, 3));
  EXPECT_GOOD(*Prout(2, ProutAction::kPreemptAndAbort, 0x22, 0x11, 3));
  ASSERT_FALSE(uas_.empty());
  EXPECT_TRUE(uas_[0].port.Matches(MakeNexus(1)));
  EXPECT_EQ(uas_[0].asc.asc, 0x2A);
  EXPECT_EQ(uas_[0].asc.ascq, 0x05);
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_TRUE(aborted[0].Matches(MakeNexus(1)));
  EXPECT_EQ(Io(1, 0x28)->task.status, scsi::Status::kReservationConflict) << "fenced";
}

TEST_F(PolicyTest, Spc2ReservationReleasedWhenNexusGoesAway) {
  Build();
  TestTask reserve({kOpReserve6, 0, 0, 0, 0, 0});
  reserve.task.cdb_length = 6;
  reserve.nexus = MakeNexus(1);
  reserve.Run(*lu_);
  EXPECT_GOOD(reserve);
  EXPECT_EQ(Io(2, 0x28)->task.status, scsi::Status::kReservationConflict);
  pr_->NexusRemoved(MakeNexus(1));
  EXPECT_EQ(Io(2, 0x28)->task.status, scsi::Status::kGood);
}

TEST_F(PolicyTest, StaleAgentRecomputesAgainstTheStoredState) {
  MemoryPrStateStore shared;
  Build(std::make_unique<SharedStore>(&shared));
  LocalPersistentReservations other(std::make_unique<SharedStore>(&shared));
  std::string error;
  ASSERT_TRUE(other.Init(&error));
  // "other" registers initiator 5 behind our back; our copy is stale.
  TestTask reg({}, 0, testing::ProutParams(0, 0x55));
  const auto cdb = testing::ProutCdb(ProutAction::kRegister);
  std::copy(cdb.begin(), cdb.end(), reg.task.cdb.begin());
  reg.task.cdb_length = 10;
  reg.nexus = MakeNexus(5);
  other.Execute(&reg.task);
  EXPECT_GOOD(reg);
  // Our CLEAR must see initiator 5's registration after the version conflict.
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  EXPECT_EQ(pr_->State().registrations.size(), 2u);
  EXPECT_GE(pr_->counters().store_conflicts.load(), 1u);
}

TEST_F(PolicyTest, StoreFailureIsRetryableAndChangesNothing) {
  MemoryPrStateStore shared;
  auto store = std::make_unique<SharedStore>(&shared);
  SharedStore* raw = store.get();
  Build(std::move(store));
  raw->fail = true;
  auto t = Prout(1, ProutAction::kRegister, 0, 0x11);
  EXPECT_SENSE(*t, scsi::SenseKey::kAbortedCommand, 0x44, 0x00);
  EXPECT_TRUE(pr_->State().registrations.empty());
  raw->fail = false;
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
}

TEST_F(PolicyTest, PreemptedNexusSeesRegistrationsPreemptedThroughScsiDevice) {
  Build();
  scsi::ScsiDevice device;
  scsi::LogicalUnitConfig config;
  config.volume_id = "pr-ua";
  device.AddLun(0, std::make_shared<scsi::LogicalUnit>(&disk_, config, pr_.get()));
  pr_->SetUnitAttentionSink([&device](const PrUnitAttention& ua) {
    EXPECT_TRUE(
        device.EstablishUnitAttention(ua.port.InitiatorPort(), ua.port.targetPort, 0, ua.asc));
  });
  auto submit = [&](int i, std::vector<uint8_t> cdb, std::vector<uint8_t> out = {}) {
    auto t = std::make_unique<TestTask>(std::initializer_list<uint8_t>{}, 0, std::move(out));
    std::copy(cdb.begin(), cdb.end(), t->task.cdb.begin());
    t->task.cdb_length = cdb.size();
    t->nexus = MakeNexus(i);
    t->Submit(device);
    return t;
  };
  const std::vector<uint8_t> tur(6, 0);
  for (int i : {1, 2}) {
    device.NexusAdded(MakeNexus(i));
    submit(i, tur);  // Consumes POWER ON.
    EXPECT_GOOD(*submit(i, tur));
  }
  auto prout = [&](int i, ProutAction a, uint64_t key, uint64_t sa, uint8_t type) {
    const auto cdb = testing::ProutCdb(a, type);
    return submit(i, std::vector<uint8_t>(cdb.begin(), cdb.end()), testing::ProutParams(key, sa));
  };
  EXPECT_GOOD(*prout(1, ProutAction::kRegister, 0, 0x11, 0));
  EXPECT_GOOD(*prout(2, ProutAction::kRegister, 0, 0x22, 0));
  EXPECT_GOOD(*prout(1, ProutAction::kReserve, 0x11, 0, 3));
  EXPECT_GOOD(*prout(2, ProutAction::kPreempt, 0x22, 0x11, 3));
  auto t = submit(1, tur);
  EXPECT_SENSE(*t, scsi::SenseKey::kUnitAttention, 0x2A, 0x05);
  EXPECT_GOOD(*submit(1, tur));
  EXPECT_GOOD(*submit(2, tur));
}

class FileStoreTest : public PolicyTest {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vios-pr-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/pr.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(FileStoreTest, AptplStateSurvivesRestart) {
  Build(std::make_unique<FilePrStateStore>(path_));
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11, 0, /*aptpl=*/true));
  EXPECT_GOOD(*Prout(1, ProutAction::kReserve, 0x11, 0, 1));
  const PrState before = pr_->State();
  Build(std::make_unique<FilePrStateStore>(path_));  // "Restart".
  EXPECT_EQ(pr_->State(), before);
  EXPECT_EQ(Io(2, 0x2A)->task.status, scsi::Status::kReservationConflict);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
}

TEST_F(FileStoreTest, WithoutAptplNothingSurvivesButGenerationKeepsCounting) {
  Build(std::make_unique<FilePrStateStore>(path_));
  EXPECT_GOOD(*Prout(1, ProutAction::kRegister, 0, 0x11));
  EXPECT_GOOD(*Prout(1, ProutAction::kReserve, 0x11, 0, 1));
  Build(std::make_unique<FilePrStateStore>(path_));
  EXPECT_TRUE(pr_->State().registrations.empty());
  EXPECT_FALSE(pr_->State().Reserved());
  EXPECT_EQ(pr_->State().generation, 1u);
  EXPECT_GOOD(*Prout(2, ProutAction::kRegister, 0, 0x22));
}

TEST_F(FileStoreTest, CorruptFileIsAnErrorNotACrash) {
  {
    std::ofstream out(path_);
    out << "{\"version\": 1, \"reservation\": {\"registrations\": 5}}";
  }
  FilePrStateStore store(path_);
  StoredPrState stored;
  std::string error;
  EXPECT_FALSE(store.Load(&stored, &error));
  EXPECT_NE(error.find("registrations"), std::string::npos) << error;
  LocalPersistentReservations pr(std::make_unique<FilePrStateStore>(path_));
  EXPECT_FALSE(pr.Init(&error));
}

}  // namespace
}  // namespace vios::reservation
