// Integration tests of leader election: candidates in separate processes contend for one Lease
// on a real kube-apiserver; exactly one leads at any time, and after the leader is killed with
// SIGKILL another takes over within the lease duration (plus one retry period).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/kube/integration_util.h"
#include "common/kube/leader_election.h"

extern char** environ;

namespace vios::kube {
namespace {

using namespace kube::testing;
using std::chrono::milliseconds;

constexpr int kLeaseMs = 3000;
constexpr int kRenewMs = 2000;
constexpr int kRetryMs = 400;

struct Line {
  std::string what;
  std::string id;
  long long ms;
};

// Candidate is one kube_leader_helper process and the lines it printed.
class Candidate {
 public:
  Candidate(const std::string& ns, const std::string& lease, const std::string& id) : id_(id) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string kubeconfig = vios::testing::SharedControlPlane().KubeconfigPath();
    std::vector<std::string> args = {KUBE_LEADER_HELPER,
                                     kubeconfig,
                                     ns,
                                     lease,
                                     id,
                                     std::to_string(kLeaseMs),
                                     std::to_string(kRenewMs),
                                     std::to_string(kRetryMs)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, KUBE_LEADER_HELPER, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      FILE* in = fdopen(fd, "r");
      char buf[256];
      while (std::fgets(buf, sizeof(buf), in) != nullptr) {
        std::istringstream words(buf);
        Line line;
        words >> line.what >> line.id >> line.ms;
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(line);
      }
      std::fclose(in);
    });
  }
  ~Candidate() {
    Signal(SIGKILL);
    Wait();
  }
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  void Wait() {
    if (pid_ > 0) {
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
  }
  std::vector<Line> Lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // First returns the time of the first line of kind what, or -1.
  long long First(const std::string& what) {
    for (const Line& l : Lines()) {
      if (l.what == what) return l.ms;
    }
    return -1;
  }
  long long Last(const std::string& what) {
    long long last = -1;
    for (const Line& l : Lines()) {
      if (l.what == what) last = l.ms;
    }
    return last;
  }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::vector<Line> lines_;
};

long long NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Holder(const std::string& ns, const std::string& lease) {
  return TestClient().Get(resources::kLeases, ns, lease)["spec"].value("holderIdentity", "");
}

TEST(LeaderElectionIntegrationTest, OneLeaderAtATimeAndHandoverAfterSigkill) {
  std::string ns = NewNamespace("election");
  auto a = std::make_unique<Candidate>(ns, "op", "cand-a");
  auto b = std::make_unique<Candidate>(ns, "op", "cand-b");
  ASSERT_TRUE(Eventually([&] { return a->First("LEADING") > 0 || b->First("LEADING") > 0; },
                         milliseconds(20000)));
  // Watch both for two lease durations: the follower must never lead meanwhile.
  std::this_thread::sleep_for(milliseconds(2 * kLeaseMs));
  bool a_leads = a->First("LEADING") > 0;
  Candidate* leader = a_leads ? a.get() : b.get();
  Candidate* follower = a_leads ? b.get() : a.get();
  EXPECT_EQ(follower->First("LEADING"), -1);
  EXPECT_EQ(follower->First("HOLD"), -1);
  EXPECT_EQ(Holder(ns, "op"), leader->id());

  long long killed_at = NowMs();
  leader->Signal(SIGKILL);
  leader->Wait();
  ASSERT_TRUE(Eventually([&] { return follower->First("LEADING") > 0; }, milliseconds(20000)));
  long long handover = follower->First("LEADING") - killed_at;
  std::printf("handover after SIGKILL: %lld ms (lease %d ms, retry %d ms)\n", handover, kLeaseMs,
              kRetryMs);
  // The follower measures expiry from when it saw the last renewal (up to one jittered retry
  // period after it happened) and acquires at its next poll (one more): lease + 2 polls.
  EXPECT_LE(handover, kLeaseMs + 2 * (kRetryMs * 6 / 5) + 250);
  EXPECT_GT(handover, 0);
  // Never two at once: the dead leader's last HOLD precedes the new leader's first.
  ASSERT_TRUE(Eventually([&] { return follower->First("HOLD") > 0; }));
  EXPECT_LT(leader->Last("HOLD"), follower->First("HOLD"));
  EXPECT_TRUE(Eventually([&] { return Holder(ns, "op") == follower->id(); }));

  // A graceful stop releases the lease: the holder is cleared at once.
  follower->Signal(SIGTERM);
  follower->Wait();
  EXPECT_NE(follower->First("STOPPED"), -1);
  EXPECT_EQ(Holder(ns, "op"), "");
}

TEST(LeaderElectionIntegrationTest, ReleasedLeaseIsTakenWithoutWaitingForExpiry) {
  std::string ns = NewNamespace("release");
  auto a = std::make_unique<Candidate>(ns, "op", "first");
  ASSERT_TRUE(Eventually([&] { return a->First("LEADING") > 0; }, milliseconds(20000)));
  auto b = std::make_unique<Candidate>(ns, "op", "second");
  std::this_thread::sleep_for(milliseconds(kRetryMs * 3));
  EXPECT_EQ(b->First("LEADING"), -1);
  long long stopped_at = NowMs();
  a->Signal(SIGTERM);
  a->Wait();
  ASSERT_TRUE(Eventually([&] { return b->First("LEADING") > 0; }, milliseconds(20000)));
  EXPECT_LT(b->First("LEADING") - stopped_at, kLeaseMs) << "waited for expiry despite release";
}

TEST(LeaderElectionIntegrationTest, InProcessCandidatesNeverBothWin) {
  std::string ns = NewNamespace("race");
  LeaderElectionConfig config;
  config.lease_namespace = ns;
  config.lease_name = "race";
  config.lease_duration = milliseconds(kLeaseMs);
  config.renew_deadline = milliseconds(kRenewMs);
  config.retry_period = milliseconds(kRetryMs);
  std::vector<std::unique_ptr<LeaderElector>> electors;
  for (int i = 0; i < 4; ++i) {
    config.identity = "c" + std::to_string(i);
    electors.push_back(std::make_unique<LeaderElector>(TestClient(), config));
  }
  // All four try at the same moment, repeatedly: the resourceVersion precondition lets one win.
  int winners_total = 0;
  for (int round = 0; round < 5; ++round) {
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (auto& e : electors) {
      threads.emplace_back([&] {
        if (e->TryAcquireOrRenew()) winners++;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_LE(winners.load(), 1) << "round " << round;
    winners_total += winners.load();
  }
  EXPECT_GE(winners_total, 1);
}

}  // namespace
}  // namespace vios::kube
