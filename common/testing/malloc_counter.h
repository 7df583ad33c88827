// MallocCounter: counts every heap allocation — malloc from C libraries and operator new alike —
// made on threads other than the test's own while counting is on. It uses the sanitizer
// runtime's malloc hooks, so it works in the ASan/UBSan build CI runs; Available() is false in a
// build without a sanitizer (the test then says so and skips).
//
//   ASSERT_TRUE(testing::MallocCounter::Install());
//   testing::MallocCounter::Start();   // from the test's thread
//   ... steady-state I/O ...
//   EXPECT_EQ(testing::MallocCounter::Stop(), 0u);
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             size_t),
                                                         void (*free_hook)(const volatile void*))
    __attribute__((weak));

namespace vios::testing {

class MallocCounter {
 public:
  static bool Available() { return __sanitizer_install_malloc_and_free_hooks != nullptr; }

  // Install registers the hooks once and checks that an allocation on another thread is seen.
  static bool Install() {
    if (!Available()) return false;
    static const bool installed =
        __sanitizer_install_malloc_and_free_hooks(&OnMalloc, &OnFree) != 0;
    if (!installed) return false;
    Start();
    std::thread([] { delete new int(1); }).join();
    return Stop() > 0;
  }
  // Start zeroes the count and counts allocations off the calling thread until Stop.
  static void Start() {
    owner() = std::this_thread::get_id();
    count() = 0;
    counting() = true;
  }
  static uint64_t Stop() {
    counting() = false;
    return count().load();
  }

 private:
  static std::atomic<uint64_t>& count() {
    static std::atomic<uint64_t> c{0};
    return c;
  }
  static std::atomic<bool>& counting() {
    static std::atomic<bool> on{false};
    return on;
  }
  static std::thread::id& owner() {
    static std::thread::id id;
    return id;
  }
  static void OnMalloc(const volatile void*, size_t) {
    if (counting().load(std::memory_order_relaxed) && std::this_thread::get_id() != owner()) {
      count().fetch_add(1, std::memory_order_relaxed);
    }
  }
  static void OnFree(const volatile void*) {}
};

}  // namespace vios::testing
