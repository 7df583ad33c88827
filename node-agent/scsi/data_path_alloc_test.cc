// DESIGN.md §4: no heap allocation per I/O in steady state — asserted here for the whole agent data
// path as vios-agent assembles it: iSCSI target (event loop) -> ScsiDevice -> LogicalUnit with a
// persistent-reservation policy -> Volume (two extents) -> Router -> FileBackend (io_uring,
// completion thread). Every malloc off the test's main thread is counted through the sanitizer
// runtime's hooks, so C code (liburing) and operator new alike are seen.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "node-agent/backend/file_backend.h"
#include "node-agent/iscsi/server.h"
#include "node-agent/iscsi/test_initiator_test_util.h"
#include "node-agent/pool/pool.h"
#include "node-agent/reservation/local_persistent_reservations.h"
#include "node-agent/scsi/scsi_device.h"

extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             size_t),
                                                         void (*free_hook)(const volatile void*))
    __attribute__((weak));

namespace {
std::atomic<uint64_t> g_off_main_mallocs{0};
std::atomic<bool> g_counting{false};
std::thread::id g_main_thread;
void CountMalloc(const volatile void*, size_t) {
  if (g_counting.load(std::memory_order_relaxed) && std::this_thread::get_id() != g_main_thread) {
    g_off_main_mallocs.fetch_add(1, std::memory_order_relaxed);
  }
}
void IgnoreFree(const volatile void*) {}
}  // namespace

namespace vios::scsi {
namespace {

using iscsi::testing::TestInitiator;

constexpr uint64_t kMiB = 1 << 20;
constexpr char kTarget[] = "iqn.2026-11.dev.vios:alloc";
constexpr char kInitiator[] = "iqn.2026-11.dev.vios:alloc-client";

class DataPathAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vios-alloc-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    pool_ = std::make_unique<pool::Pool>("pool0", kMiB);
    for (const char* name : {"a", "b"}) {
      backend::FileBackendOptions o;
      o.path = dir_ + "/" + name + ".img";
      o.size_bytes = 4 * kMiB;
      o.create = true;
      std::string error;
      ASSERT_TRUE(pool_->AddBackend(name, backend::FileBackend::Open(o, &error), &error)) << error;
    }
    std::string error;
    volume_ = pool_->OpenVolume("pvc-alloc", {{"b", kMiB, kMiB}, {"a", 2 * kMiB, kMiB}}, &error);
    ASSERT_NE(volume_, nullptr) << error;
    reservations_ = std::make_shared<reservation::LocalPersistentReservations>();
    LogicalUnitConfig c;
    c.volume_id = "pvc-alloc";
    device_.AddLun(0, std::make_shared<LogicalUnit>(volume_.get(), c, reservations_.get()));
    iscsi::TargetConfig tc;
    tc.iqn = kTarget;
    tc.allowed_initiators = {kInitiator};
    ASSERT_TRUE(registry_.Add(std::make_shared<iscsi::Target>(tc, &device_)));
    server_ = std::make_unique<iscsi::Server>(iscsi::ServerConfig{}, &registry_);
    ASSERT_TRUE(server_->Start());
    port_ = server_->AddPortal("127.0.0.1", 0, 1, &error);
    ASSERT_NE(port_, 0) << error;
  }
  void TearDown() override {
    g_counting = false;
    if (server_) server_->Stop();
    device_.RemoveLun(0);
    volume_.reset();
    pool_.reset();
    ::unlink((dir_ + "/a.img").c_str());
    ::unlink((dir_ + "/b.img").c_str());
    ::rmdir(dir_.c_str());
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

  std::string dir_;
  std::unique_ptr<pool::Pool> pool_;
  std::unique_ptr<pool::Volume> volume_;
  std::shared_ptr<reservation::LocalPersistentReservations> reservations_;
  ScsiDevice device_;
  iscsi::TargetRegistry registry_;
  std::unique_ptr<iscsi::Server> server_;
  uint16_t port_ = 0;
};

TEST_F(DataPathAllocTest, NoHeapAllocationPer4KiBIoThroughTheWholeStack) {
  if (__sanitizer_install_malloc_and_free_hooks == nullptr) {
    GTEST_SKIP() << "needs the sanitizer runtime's malloc hooks (the CI build has them)";
  }
  auto ini = std::make_unique<TestInitiator>();
  ASSERT_TRUE(ini->Connect(port_));
  ASSERT_EQ(ini->LoginNone(kInitiator, kTarget), 0);
  g_main_thread = std::this_thread::get_id();
  ASSERT_NE(__sanitizer_install_malloc_and_free_hooks(&CountMalloc, &IgnoreFree), 0);
  g_counting = true;  // The counter works: an allocation on another thread is seen.
  std::thread([] { delete new int(1); }).join();
  g_counting = false;
  ASSERT_GT(g_off_main_mallocs.load(), 0u);

  for (int i = 0; i < 3; ++i) {  // TEST UNIT READY consumes the new nexus's power-on attention.
    ini->Send(ini->Command({0x00, 0, 0, 0, 0, 0}, 0, false, false));
    ASSERT_TRUE(ini->Receive());
  }
  std::vector<uint8_t> block(4096);
  for (int i = 0; i < 200; ++i) RoundTrip(ini.get(), i, &block);  // Warm-up: pools fill.
  g_off_main_mallocs = 0;
  g_counting = true;
  for (int i = 0; i < 500; ++i) RoundTrip(ini.get(), i, &block);
  g_counting = false;
  EXPECT_EQ(g_off_main_mallocs.load(), 0u) << "allocations off the main thread in 1000 I/Os";
}

}  // namespace
}  // namespace vios::scsi
