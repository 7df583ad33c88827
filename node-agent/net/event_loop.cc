// epoll + eventfd event loop. Posted functions run between event batches; timers are checked
// every iteration against a monotonic clock, so epoll_wait's timeout is the next timer's due time.
#include "node-agent/net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"

namespace vios::net {

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    VIOS_LOG(kError, "event loop setup failed").Field("error", std::strerror(errno));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake fd.
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

EventLoop::~EventLoop() {
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool EventLoop::Add(int fd, uint32_t events, Watcher* watcher) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = watcher;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::Modify(int fd, uint32_t events, Watcher* watcher) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = watcher;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::Remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void EventLoop::Every(std::chrono::milliseconds period, std::function<void()> fn) {
  timers_.push_back(
      Periodic{period, NowMs() + static_cast<uint64_t>(period.count()), std::move(fn)});
}

uint64_t EventLoop::NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void EventLoop::Stop() {
  stop_ = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void EventLoop::RunPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

int EventLoop::NextTimeoutMs() {
  if (timers_.empty()) return 1000;
  uint64_t now = NowMs();
  uint64_t next = UINT64_MAX;
  for (const auto& t : timers_) next = std::min(next, t.next_ms);
  return next <= now ? 0 : static_cast<int>(std::min<uint64_t>(next - now, 1000));
}

void EventLoop::RunTimers() {
  uint64_t now = NowMs();
  for (size_t i = 0; i < timers_.size(); ++i) {
    if (timers_[i].next_ms <= now) {
      timers_[i].next_ms = now + static_cast<uint64_t>(timers_[i].period.count());
      timers_[i].fn();  // May not add timers (index-based loop keeps that safe anyway).
    }
  }
}

void EventLoop::Run() {
  thread_id_ = std::this_thread::get_id();
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stop_) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, NextTimeoutMs());
    if (n < 0 && errno != EINTR) {
      VIOS_LOG(kError, "epoll_wait failed").Field("error", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t value = 0;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &value, sizeof(value));
        continue;
      }
      static_cast<Watcher*>(events[i].data.ptr)->OnEvents(events[i].events);
    }
    RunPosted();
    RunTimers();
  }
  RunPosted();
}

LoopThread::LoopThread() : thread_([this] { loop_.Run(); }) {}

LoopThread::~LoopThread() { Join(); }

void LoopThread::Join() {
  if (thread_.joinable()) {
    loop_.Stop();
    thread_.join();
  }
}

}  // namespace vios::net
