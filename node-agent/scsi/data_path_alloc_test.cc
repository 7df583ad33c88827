// DESIGN.md §4: no heap allocation per I/O in steady state — asserted here for the whole agent data
// path as vios-agent assembles it: iSCSI target (event loop) -> ScsiDevice -> LogicalUnit with a
// persistent-reservation policy -> Volume (two extents) -> Router -> FileBackend (io_uring,
// completion thread). Every malloc off the test's main thread is counted through the sanitizer
// runtime's hooks, so C code (liburing) and operator new alike are seen.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/testing/malloc_counter.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/test_initiator_test_util.h"
#include "node-agent/pool/two_file_pool_test_util.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/scsi/scsi_device.h"

namespace vios::scsi {
namespace {

using iscsi::testing::TestInitiator;

constexpr char kTarget[] = "iqn.2026-11.dev.vios:alloc";
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:alloc-client";

class DataPathAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(pool_.Open("pvc-alloc"));
    reservations_ = std::make_shared<reservation::LocalPersistentReservations>();
    LogicalUnitConfig c;
    c.volume_id = "pvc-alloc";
    device_.AddLun(0, std::make_shared<LogicalUnit>(pool_.volume(), c, reservations_.get()));
    iscsi::TargetConfig tc;
    tc.iqn = kTarget;
    tc.allowed_initiators = {kInitiator};
    ASSERT_TRUE(registry_.Add(std::make_shared<iscsi::Target>(tc, &device_)));
    server_ = std::make_unique<iscsi::Server>(iscsi::ServerConfig{}, &registry_);
    ASSERT_TRUE(server_->Start());
    std::string error;
    port_ = server_->AddPortal("127.0.0.1", 0, 1, &error);
    ASSERT_NE(port_, 0) << error;
  }
  void TearDown() override {
    if (server_) server_->Stop();
    device_.RemoveLun(0);
    pool_.Close();
  }

  // RoundTrip writes 4 KiB (straddling the extent boundary every other time) and reads it back.
  static void RoundTrip(TestInitiator* ini, int i, std::vector<uint8_t>* block) {
    std::fill(block->begin(), block->end(), static_cast<uint8_t>(i));
    const uint32_t lba = i % 2 == 0 ? 2044 : static_cast<uint32_t>(8 * (i % 200));
    ini->Send(ini->Command(TestInitiator::Write10(lba, 8), 4096, false, true), *block);
    auto w = ini->Receive();
    ASSERT_TRUE(w);
    ASSERT_EQ(w->bhs.opcode(), iscsi::Opcode::kScsiResponse);
    ASSERT_EQ(w->bhs.bytes[3], 0) << "write status";
    ini->Send(ini->Command(TestInitiator::Read10(lba, 8), 4096, true, false));
    auto r = ini->Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->bhs.opcode(), iscsi::Opcode::kDataIn);
    ASSERT_EQ(r->data, *block);
  }

  pool::testing::TwoFilePool pool_;
  std::shared_ptr<reservation::LocalPersistentReservations> reservations_;
  ScsiDevice device_;
  iscsi::TargetRegistry registry_;
  std::unique_ptr<iscsi::Server> server_;
  uint16_t port_ = 0;
};

TEST_F(DataPathAllocTest, NoHeapAllocationPer4KiBIoThroughTheWholeStack) {
  if (!vios::testing::MallocCounter::Available()) {
    GTEST_SKIP() << "needs the sanitizer runtime's malloc hooks (the CI build has them)";
  }
  ASSERT_TRUE(vios::testing::MallocCounter::Install());
  auto ini = std::make_unique<TestInitiator>();
  ASSERT_TRUE(ini->Connect(port_));
  ASSERT_EQ(ini->LoginNone(kInitiator, kTarget), 0);
  for (int i = 0; i < 3; ++i) {  // TEST UNIT READY consumes the new nexus's power-on attention.
    ini->Send(ini->Command({0x00, 0, 0, 0, 0, 0}, 0, false, false));
    ASSERT_TRUE(ini->Receive());
  }
  std::vector<uint8_t> block(4096);
  for (int i = 0; i < 200; ++i) RoundTrip(ini.get(), i, &block);  // Warm-up: pools fill.
  vios::testing::MallocCounter::Start();
  for (int i = 0; i < 500; ++i) RoundTrip(ini.get(), i, &block);
  EXPECT_EQ(vios::testing::MallocCounter::Stop(), 0u)
      << "allocations off the main thread in 1000 I/Os";
}

}  // namespace
}  // namespace vios::scsi
