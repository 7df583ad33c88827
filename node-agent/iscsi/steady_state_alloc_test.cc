// DESIGN.md §4: the data path must not allocate per 4 KiB I/O in steady state. This binary counts
// every operator new made off the test's main thread (i.e. on the Server's event loop, where the
// FakeDevice also completes synchronously) across a thousand 4 KiB reads and writes after warm-up.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>

#include "node-agent/iscsi/server_fixture_test_util.h"

namespace {
std::atomic<uint64_t> g_off_main_allocations{0};
std::thread::id g_main_thread;
}  // namespace

void* operator new(size_t size) {
  if (g_main_thread != std::thread::id() && std::this_thread::get_id() != g_main_thread) {
    g_off_main_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace vios::iscsi {
namespace {

using testing::TestInitiator;

class SteadyStateAllocTest : public testing::ServerFixture {
 protected:
  void RoundTrip(TestInitiator* ini, int i) {
    std::vector<uint8_t> block(4096, static_cast<uint8_t>(i));
    ini->Send(ini->Command(TestInitiator::Write10(8 * (i % 64), 8), 4096, false, true), block);
    auto w = ini->Receive();
    ASSERT_TRUE(w);
    ASSERT_EQ(w->bhs.opcode(), Opcode::kScsiResponse);
    ini->Send(ini->Command(TestInitiator::Read10(8 * (i % 64), 8), 4096, true, false));
    auto r = ini->Receive();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->bhs.opcode(), Opcode::kDataIn);
    ASSERT_EQ(r->data, block);
  }
};

TEST_F(SteadyStateAllocTest, NoHeapAllocationPer4KiBIoAfterWarmUp) {
  StartServer();
  auto ini = LoggedIn();
  ini->header_digest = false;
  g_main_thread = std::this_thread::get_id();
  // The counter itself works: an allocation on another thread is seen.
  uint64_t probe = g_off_main_allocations.load();
  std::thread([] { auto p = std::make_unique<int>(1); }).join();
  ASSERT_GT(g_off_main_allocations.load(), probe);
  for (int i = 0; i < 200; ++i) RoundTrip(ini.get(), i);
  uint64_t before = g_off_main_allocations.load();
  for (int i = 0; i < 1000; ++i) RoundTrip(ini.get(), i);
  uint64_t during = g_off_main_allocations.load() - before;
  g_main_thread = std::thread::id();
  EXPECT_EQ(during, 0u) << "allocations on the event loop during 2000 steady-state commands";
}

}  // namespace
}  // namespace vios::iscsi
