// Tests for the epoll event loop: cross-thread Post, fd readiness, periodic timers.
#include "node-agent/net/event_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

namespace vios::net {
namespace {

TEST(EventLoopTest, PostRunsOnLoopThread) {
  LoopThread thread;
  std::promise<bool> in_loop;
  thread.loop().Post([&] { in_loop.set_value(thread.loop().InLoopThread()); });
  EXPECT_TRUE(in_loop.get_future().get());
  EXPECT_FALSE(thread.loop().InLoopThread());
}

class ReadWatcher : public Watcher {
 public:
  explicit ReadWatcher(int fd) : fd_(fd) {}
  void OnEvents(uint32_t) override {
    char c = 0;
    if (read(fd_, &c, 1) == 1) got.set_value(c);
  }
  std::promise<char> got;

 private:
  int fd_;
};

TEST(EventLoopTest, DeliversReadiness) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ReadWatcher watcher(fds[0]);
  LoopThread thread;
  std::promise<void> added;
  thread.loop().Post([&] {
    thread.loop().Add(fds[0], 1 /*EPOLLIN*/, &watcher);
    added.set_value();
  });
  added.get_future().get();
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  EXPECT_EQ(watcher.got.get_future().get(), 'x');
  thread.Join();
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, PeriodicTimerFires) {
  EventLoop loop;
  int count = 0;
  loop.Every(std::chrono::milliseconds(5), [&] {
    if (++count == 3) loop.Stop();
  });
  uint64_t start = EventLoop::NowMs();
  loop.Run();
  EXPECT_EQ(count, 3);
  EXPECT_GE(EventLoop::NowMs() - start, 10u);
}

}  // namespace
}  // namespace vios::net
