// An epoll event loop, one per core (DESIGN.md §4: no thread per connection). Watchers get
// readiness events on the loop thread; other threads hand work over with Post(), which wakes the
// loop through an eventfd. Periodic callbacks serve keep-alive and timeouts.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vios::net {

// Watcher receives epoll events for one file descriptor.
class Watcher {
 public:
  virtual ~Watcher() = default;
  virtual void OnEvents(uint32_t events) = 0;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Add/Modify/Remove register fd with epoll; call them on the loop thread (or before Run).
  bool Add(int fd, uint32_t events, Watcher* watcher);
  bool Modify(int fd, uint32_t events, Watcher* watcher);
  void Remove(int fd);

  // Post runs fn on the loop thread soon. Thread-safe. Allocates: control path only.
  void Post(std::function<void()> fn);
  // Every runs fn on the loop thread each period, from the next Run on.
  void Every(std::chrono::milliseconds period, std::function<void()> fn);

  // Run dispatches events until Stop. Stop is thread-safe.
  void Run();
  void Stop();

  bool InLoopThread() const { return std::this_thread::get_id() == thread_id_.load(); }
  static uint64_t NowMs();

 private:
  struct Periodic {
    std::chrono::milliseconds period;
    uint64_t next_ms;
    std::function<void()> fn;
  };
  void RunPosted();
  int NextTimeoutMs();
  void RunTimers();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> thread_id_{};
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;  // Guarded by mu_.
  std::vector<Periodic> timers_;               // Loop thread only.
};

// LoopThread runs one EventLoop on its own thread.
class LoopThread {
 public:
  LoopThread();
  ~LoopThread();
  EventLoop& loop() { return loop_; }
  void Join();

 private:
  EventLoop loop_;
  std::thread thread_;
};

}  // namespace vios::net
