// TgtdFixture: a private tgtd (user-space iSCSI target, our stand-in SAN) for integration tests.
//
// Listens on 127.0.0.1:<port> with its own control port, so several test processes (and other
// helpers' tests) can run side by side. Stopped as tgtd requires: delete every target, then
// `tgtadm --op delete --mode system` (it ignores SIGTERM while targets exist); SIGKILL as a last
// resort.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vios::backend::testing {

class Tgtd {
 public:
  explicit Tgtd(int port) : port_(port) {}
  ~Tgtd() { Stop(); }

  int port() const { return port_; }
  std::string portal() const { return "127.0.0.1:" + std::to_string(port_); }

  // Start launches tgtd in the foreground and waits until its control channel answers.
  bool Start() {
    const std::string portal_arg = "portal=" + portal();
    const std::string control = std::to_string(port_);
    std::vector<std::string> args = {"tgtd", "-f", "-C", control, "--iscsi", portal_arg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawnp(&pid_, "tgtd", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    for (int i = 0; i < 100; ++i) {
      if (Admin("--mode system --op show") == 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Admin runs `tgtadm -C <port> --lld iscsi <args>`; returns its exit status.
  int Admin(const std::string& args) const {
    const std::string cmd =
        "tgtadm -C " + std::to_string(port_) + " --lld iscsi " + args + " >/dev/null 2>&1";
    return std::system(cmd.c_str());
  }

  // AddTarget creates target tid with LUN 1 backed by file, open to initiators as given
  // ("ALL" address, or a specific initiator name).
  bool AddTarget(int tid, const std::string& iqn, const std::string& file,
                 const std::string& allowed_initiator = "") {
    const std::string t = std::to_string(tid);
    if (Admin("--mode target --op new --tid " + t + " --targetname " + iqn) != 0) return false;
    tids_.push_back(tid);
    if (Admin("--mode logicalunit --op new --tid " + t + " --lun 1 --backing-store " + file) != 0)
      return false;
    if (allowed_initiator.empty()) {
      return Admin("--mode target --op bind --tid " + t + " --initiator-address ALL") == 0;
    }
    return Admin("--mode target --op bind --tid " + t + " --initiator-name " + allowed_initiator) ==
           0;
  }

  // Kill stops tgtd abruptly (simulates a SAN failure); Start brings a fresh one up.
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      tids_.clear();
    }
  }

  void Stop() {
    if (pid_ <= 0) return;
    for (int tid : tids_) {
      Admin("--mode target --op delete --force --tid " + std::to_string(tid));
    }
    tids_.clear();
    Admin("--mode system --op delete");
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
  }

 private:
  int port_;
  pid_t pid_ = -1;
  std::vector<int> tids_;
};

}  // namespace vios::backend::testing
