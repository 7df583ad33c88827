// Drives e2e/controlplane/controlplane (the Python harness) from C++ tests; see control_plane.h.
#include "common/testing/control_plane.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace vios::testing {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("VIOS_SOURCE_DIR");
  if (dir == nullptr || *dir == '\0') {
    throw std::runtime_error(
        "VIOS_SOURCE_DIR is not set: the control plane harness lives in the source tree "
        "(vios_test sets it; when running a test binary by hand, export "
        "VIOS_SOURCE_DIR=<repository>)");
  }
  return dir;
}

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/vios-controlplane-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  return pattern;
}

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (text.size() > max_bytes) {
    text = "..." + text.substr(text.size() - max_bytes);
  }
  return text;
}

// Run executes argv with stdout into a pipe and stderr appended to stderr_path; returns the exit
// status (or -1 when it did not exit normally) and the captured stdout.
int Run(const std::vector<std::string>& args, const std::string& stderr_path, std::string* out) {
  std::vector<char*> argv;
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  int err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (err_fd < 0) {
    throw std::runtime_error("open " + stderr_path + ": " + std::strerror(errno));
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    close(err_fd);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  close(err_fd);
  if (pid < 0) {
    close(pipe_fds[0]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  char buf[4096];
  for (;;) {
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

ControlPlane::ControlPlane(std::string source_dir, std::string dir)
    : source_dir_(std::move(source_dir)), dir_(std::move(dir)) {}

std::unique_ptr<ControlPlane> ControlPlane::Start(bool install_crds) {
  std::string source_dir = SourceDir();
  std::unique_ptr<ControlPlane> cp(new ControlPlane(source_dir, MakeTempDir()));
  std::vector<std::string> extra = {"--watch-pid", std::to_string(getpid())};
  if (install_crds) {
    extra.emplace_back("--crds");
  }
  cp->running_ = true;  // so that a half-started control plane is still torn down
  std::string out = cp->RunCli("up", extra);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  cp->kubeconfig_ = out;
  if (!std::filesystem::exists(cp->kubeconfig_)) {
    throw std::runtime_error("controlplane up printed '" + out + "', which is not a kubeconfig");
  }
  return cp;
}

ControlPlane::~ControlPlane() {
  try {
    Stop();
  } catch (const std::exception& e) {
    // A destructor must not throw; the harness's watchdog still stops the processes.
    fprintf(stderr, "vios::testing::ControlPlane: stop failed: %s\n", e.what());
  }
}

std::string ControlPlane::RunCli(const std::string& command,
                                 const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {source_dir_ + "/e2e/controlplane/controlplane", command, "--dir",
                                   dir_};
  args.insert(args.end(), extra.begin(), extra.end());
  std::string log_path = dir_ + "/cli.log";
  std::string out;
  int rc = Run(args, log_path, &out);
  if (rc != 0) {
    throw std::runtime_error("controlplane " + command + " failed (exit " + std::to_string(rc) +
                             "):\n" + Tail(log_path, 4000));
  }
  return out;
}

void ControlPlane::RestartApiServer() { RunCli("restart-apiserver", {}); }

void ControlPlane::Compact() { RunCli("compact", {}); }

void ControlPlane::Stop() {
  if (!running_) {
    return;
  }
  running_ = false;
  RunCli("down", {});
  if (std::getenv("VIOS_KEEP_CONTROLPLANE") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

namespace {

std::mutex shared_mu;
std::unique_ptr<ControlPlane>& SharedInstance() {
  static auto* instance = new std::unique_ptr<ControlPlane>();  // stopped by the atexit hook
  return *instance;
}
std::string& SharedError() {
  static auto* error = new std::string();
  return *error;
}

void StopShared() {
  std::lock_guard<std::mutex> lock(shared_mu);
  SharedInstance().reset();
}

}  // namespace

ControlPlane& SharedControlPlane() {
  std::lock_guard<std::mutex> lock(shared_mu);
  std::unique_ptr<ControlPlane>& instance = SharedInstance();
  if (instance != nullptr) {
    return *instance;
  }
  if (!SharedError().empty()) {
    throw std::runtime_error(SharedError());
  }
  try {
    instance = ControlPlane::Start(/*install_crds=*/true);
  } catch (const std::exception& e) {
    SharedError() = std::string("local control plane failed to start: ") + e.what();
    throw std::runtime_error(SharedError());
  }
  static bool hooked = [] { return std::atexit(StopShared) == 0; }();
  (void)hooked;
  return *instance;
}

void ControlPlaneEnvironment::SetUp() {
  try {
    SharedControlPlane();
  } catch (const std::exception& e) {
    // Not FAIL(): gtest would then skip every test. Each test that calls SharedControlPlane()
    // gets the same error and fails with it.
    fprintf(stderr, "vios::testing::ControlPlaneEnvironment: %s\n", e.what());
  }
}

void ControlPlaneEnvironment::TearDown() { StopShared(); }

}  // namespace vios::testing
