// vios-peer-path-bench: throughput of I/O rerouted through a peer agent against the same I/O on
// the local path (issue #7 target: ratio >= 0.7 at 128 KiB sequential and 4 KiB random).
//
// Two agents in one process over loopback: agent B serves peer I/O (PeerServer: the data channel
// and gRPC, mutual TLS, certificates made with openssl) on its FileBackend; agent A has a Router
// over its own FileBackend on the same file (a shared LUN) and a PeerPath to B. "local" runs
// through A's Router with the local path Healthy; "peer" forces A's local path Lost so every
// request crosses the peer channel. Closed loop, fixed queue depth, fixed duration per workload.
//
// --san puts a private tgtd (our stand-in SAN) in front of the file: both agents then reach it
// through their own IscsiBackend session (libiscsi), as in the e2e, and "local" is A's iSCSI
// session while "peer" is A -> B (mTLS) -> B's iSCSI session.
//
//   vios-peer-path-bench [--san] [--transport data|integrity|stream|unary | --compare]
//                        [--workload NAME]
//                        [--file PATH] [--size-mib N] [--seconds S] [--rounds R] [--qd N] [--json]
//
// --rounds R alternates local and peer R times within --seconds per mode (fairer on a loaded
// machine).
//
// --transport picks how the peer path forwards: the data channel (default, peer_data.h,
// encrypted), the data channel in integrity mode (authenticated, not encrypted), one gRPC
// IoStream per path, or one unary ExecuteIo call per I/O; --compare runs all four, alternating
// with local, in one process.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "common/events/event_bus.h"
#include "common/log/log.h"
#include "node-agent/backend/file_backend.h"
#include "node-agent/backend/iscsi_backend.h"
#include "node-agent/backend/memory_backend.h"
#include "node-agent/backend/tgtd_fixture.h"
#include "node-agent/peer/peer_client.h"
#include "node-agent/peer/peer_server.h"
#include "node-agent/peer/peer_test_pki.h"
#include "node-agent/router/peer_path.h"
#include "node-agent/router/router.h"

namespace {

using namespace vios;
using Clock = std::chrono::steady_clock;

struct Workload {
  const char* name;
  backend::IoOp op;
  uint32_t block;
  bool random;
};

// Driver keeps qd requests in flight against a device until the deadline.
class Driver {
 public:
  Driver(backend::BlockDevice* device, const Workload& w, unsigned qd, uint64_t span)
      : device_(device), w_(w), span_(span), rng_(42) {
    slots_.resize(qd);
    for (auto& s : slots_) {
      s.driver = this;
      s.buffer.assign(w.block, 0x5A);
    }
  }
  double Run(std::chrono::milliseconds duration) {
    deadline_ = Clock::now() + duration;
    const auto t0 = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = slots_.size();
    }
    for (auto& s : slots_) Issue(&s);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return running_ == 0; });
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    return static_cast<double>(bytes_) / secs / 1e6;  // MB/s
  }
  uint64_t errors() const { return errors_; }
  uint64_t ios() const { return ios_; }

 private:
  struct Slot final : backend::IoCompletion {
    Driver* driver = nullptr;
    backend::IoRequest req;
    std::vector<uint8_t> buffer;
    void IoDone(backend::IoRequest* r) override { driver->Done(this, r->result); }
  };
  uint64_t NextOffset() {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t blocks = span_ / w_.block;
    uint64_t b;
    if (w_.random) {
      b = rng_() % blocks;
    } else {
      b = next_++ % blocks;
    }
    return b * w_.block;
  }
  void Issue(Slot* s) {
    s->req = backend::IoRequest{};
    s->req.op = w_.op;
    s->req.offset = NextOffset();
    if (w_.op == backend::IoOp::kRead) {
      s->req.read_buffer = std::span<uint8_t>(s->buffer);
    } else {
      s->req.write_buffer = std::span<const uint8_t>(s->buffer);
    }
    s->req.completion = s;
    device_->Submit(&s->req);
  }
  void Done(Slot* s, int result) {
    bool again;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (result != 0) {
        ++errors_;
      } else {
        bytes_ += w_.block;
        ++ios_;
      }
      again = Clock::now() < deadline_;
      if (!again && --running_ == 0) cv_.notify_all();
    }
    if (again) Issue(s);
  }

  backend::BlockDevice* device_;
  const Workload w_;
  const uint64_t span_;
  std::mt19937_64 rng_;
  std::vector<Slot> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t running_ = 0;
  uint64_t next_ = 0;
  uint64_t bytes_ = 0, ios_ = 0, errors_ = 0;
  Clock::time_point deadline_;
};

}  // namespace

double ProcessCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char** argv) {
  std::string file = "/var/tmp/vios-peer-path-bench.img";
  uint64_t size_mib = 256;
  int seconds = 5;
  unsigned qd = 16;
  int rounds = 1;
  bool json = false;
  bool san = false;
  std::string transport = "data";
  bool compare = false;
  std::string only;  // one workload by name
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--file") {
      file = next();
    } else if (a == "--size-mib") {
      size_mib = std::stoull(next());
    } else if (a == "--seconds") {
      seconds = std::stoi(next());
    } else if (a == "--qd") {
      qd = static_cast<unsigned>(std::stoul(next()));
    } else if (a == "--json") {
      json = true;
    } else if (a == "--san") {
      san = true;
    } else if (a == "--rounds") {
      rounds = std::max(1, std::stoi(next()));
    } else if (a == "--transport") {
      transport = next();
    } else if (a == "--unary") {  // the flag before --transport
      transport = "unary";
    } else if (a == "--compare") {
      compare = true;
    } else if (a == "--workload") {
      only = next();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--san] [--transport data|integrity|stream|unary | --compare] "
                   "[--workload NAME] "
                   "[--file PATH] [--size-mib N] "
                   "[--seconds S] [--rounds R] [--qd N] [--json]\n",
                   argv[0]);
      return 2;
    }
  }
  // Peer modes: how a PeerPath forwards, and what its data connection asks for.
  struct PeerMode {
    const char* name;
    router::PeerTransport transport;
    agent::peer::DataProtection protection;
  };
  const std::vector<PeerMode> all_modes = {
      {"data", router::PeerTransport::kData, agent::peer::DataProtection::kEncrypt},
      {"integrity", router::PeerTransport::kData, agent::peer::DataProtection::kIntegrity},
      {"stream", router::PeerTransport::kStream, agent::peer::DataProtection::kEncrypt},
      {"unary", router::PeerTransport::kUnary, agent::peer::DataProtection::kEncrypt},
  };
  std::vector<PeerMode> peer_modes;
  for (const PeerMode& m : all_modes) {
    if (compare || transport == m.name) peer_modes.push_back(m);
  }
  if (peer_modes.empty()) {
    std::fprintf(stderr, "--transport: %s is not data, integrity, stream or unary\n",
                 transport.c_str());
    return 2;
  }
  log::SetLevel(log::Level::kError);
  agent::peer::testing::Pki pki;
  pki.MakeCa("ca");
  pki.MakeLeaf("node-a", "ca");
  pki.MakeLeaf("node-b", "ca");

  std::string error;
  backend::FileBackendOptions fo{.path = file, .size_bytes = size_mib << 20, .create = true};
  std::unique_ptr<backend::testing::Tgtd> tgtd;  // outlives both sessions
  std::unique_ptr<backend::BlockDevice> b_disk = backend::FileBackend::Open(fo, &error);
  std::unique_ptr<backend::BlockDevice> a_disk;
  if (san && b_disk) {
    b_disk.reset();  // the file was created at size; tgtd serves it
    // tgtd takes control ports up to 32767 only (-C): stay in 20000..31999.
    tgtd = std::make_unique<backend::testing::Tgtd>(20000 + ::getpid() % 12000);
    const std::string iqn = "iqn.2026-11.dev.vios.bench:san";
    if (!tgtd->Start() || !tgtd->AddTarget(1, iqn, file)) {
      std::fprintf(stderr, "cannot start tgtd on %s\n", tgtd->portal().c_str());
      return 1;
    }
    backend::IscsiBackendOptions io{.portal = tgtd->portal(), .target = iqn, .lun = 1};
    io.initiator_name = "iqn.2026-11.dev.vios:node-a";
    a_disk = backend::IscsiBackend::Open(io, &error);
    io.initiator_name = "iqn.2026-11.dev.vios:node-b";
    if (a_disk) b_disk = backend::IscsiBackend::Open(io, &error);
  } else if (b_disk) {
    a_disk = backend::FileBackend::Open(fo, &error);
  }
  if (!a_disk || !b_disk) {
    std::fprintf(stderr, "cannot open %s: %s\n", file.c_str(), error.c_str());
    return 1;
  }
  const std::string a_describe = a_disk->Describe();
  events::EventBus bus;
  agent::peer::PeerServerOptions so{.listen_address = "127.0.0.1:0",
                                    .data_listen_address = "127.0.0.1:0",
                                    .member = "node-b",
                                    .version = "bench",
                                    .tls = pki.Tls("node-b", "ca")};
  so.data_allow_integrity = true;  // granted to the paths that ask (--transport integrity)
  backend::BlockDevice* served = b_disk.get();
  std::unique_ptr<backend::MemoryBackend> memory;
  if (getenv("VIOS_BENCH_PEER_MEMORY") != nullptr) {  // isolates the channel from the file
    memory = std::make_unique<backend::MemoryBackend>(size_mib << 20);
    served = memory.get();
  }
  so.backends = [] { return std::vector<agent::peer::BackendReachability>{{"p", "b", true}}; };
  so.local_devices = [served](const std::string&, const std::string&) { return served; };
  agent::peer::PeerServer server(std::move(so), bus);
  server.Start();

  router::Router router("p/b", std::move(a_disk));
  auto channel = agent::peer::MakePeerChannel("127.0.0.1:" + std::to_string(server.port()),
                                              "node-b", pki.Tls("node-a", "ca"));
  // A fresh PeerPath per peer run (added for the run, removed after): the transports can be
  // compared in one process against the same peer.
  auto make_path = [&](const PeerMode& mode) {
    auto path = std::make_unique<router::PeerPath>(
        channel, router::PeerPathOptions{.pool = "p",
                                         .backend = "b",
                                         .peer = "node-b",
                                         .self = "node-a",
                                         .health_interval = std::chrono::milliseconds(0),
                                         .transport = mode.transport,
                                         .data_host = "127.0.0.1",
                                         .data_tls = pki.Tls("node-a", "ca"),
                                         .data_protection = mode.protection});
    if (path->CheckHealth() != router::PathHealth::kHealthy) {
      std::fprintf(stderr, "peer not healthy\n");
      std::exit(1);
    }
    if (mode.transport == router::PeerTransport::kData && !path->data_connected()) {
      std::fprintf(stderr, "peer data channel not connected\n");
      std::exit(1);
    }
    return path;
  };
  // Modes: 0 local, then peer_modes[mode - 1].
  const int modes = 1 + static_cast<int>(peer_modes.size());

  const std::vector<Workload> workloads = {
      {"128k-seq-read", backend::IoOp::kRead, 128 << 10, false},
      {"128k-seq-write", backend::IoOp::kWrite, 128 << 10, false},
      {"4k-rand-read", backend::IoOp::kRead, 4096, true},
      {"4k-rand-write", backend::IoOp::kWrite, 4096, true},
  };
  const uint64_t span = size_mib << 20;
  std::string rows, json_rows, cpu_rows;
  for (const Workload& w : workloads) {
    if (!only.empty() && only != w.name) continue;
    // The modes alternate in `rounds` slices of seconds/rounds each, so a neighbour's load on
    // the shared machine hits them alike; MB/s is the mean over the slices.
    std::vector<double> mbps(modes, 0.0);
    std::vector<double> cpu(modes, 0.0);  // CPU seconds of this process (both agents) per mode
    std::vector<double> gb(modes, 0.0);   // data moved per mode
    uint64_t errors = 0;
    const auto slice = std::chrono::milliseconds(seconds * 1000 / rounds);
    for (int r = 0; r < rounds; ++r) {
      for (int mode = 0; mode < modes; ++mode) {
        router.local_path()->SetHealth(mode == 0 ? router::PathHealth::kHealthy
                                                 : router::PathHealth::kLost);
        if (mode > 0) router.AddPath(make_path(peer_modes[mode - 1]));
        Driver d(&router, w, qd, span);
        const double cpu0 = ProcessCpuSeconds();
        const double rate = d.Run(slice);
        cpu[mode] += ProcessCpuSeconds() - cpu0;
        gb[mode] += rate * static_cast<double>(slice.count()) / 1e6;  // MB/s x ms -> GB
        mbps[mode] += rate / rounds;
        errors += d.errors();
        if (mode > 0) router.RemovePath("peer:node-b");
      }
    }
    char line[160];
    std::snprintf(line, sizeof line, "| %s | %u | %.1f |", w.name, qd, mbps[0]);
    rows += line;
    std::snprintf(line, sizeof line, "| %s | %u | %.2f |", w.name, qd, cpu[0] / gb[0]);
    cpu_rows += line;
    std::snprintf(line, sizeof line, "%s{\"workload\":\"%s\",\"qd\":%u,\"local_mbps\":%.1f",
                  json_rows.empty() ? "" : ",", w.name, qd, mbps[0]);
    json_rows += line;
    for (int mode = 1; mode < modes; ++mode) {
      const char* name = peer_modes[mode - 1].name;
      std::snprintf(line, sizeof line, " %.1f | %.2f |", mbps[mode], mbps[mode] / mbps[0]);
      rows += line;
      std::snprintf(line, sizeof line, " %.2f |", cpu[mode] / gb[mode]);
      cpu_rows += line;
      std::snprintf(line, sizeof line, ",\"%s_mbps\":%.1f,\"%s_ratio\":%.3f", name, mbps[mode],
                    name, mbps[mode] / mbps[0]);
      json_rows += line;
    }
    std::snprintf(line, sizeof line, " %llu |\n", static_cast<unsigned long long>(errors));
    rows += line;
    cpu_rows += "\n";
    std::snprintf(line, sizeof line, ",\"errors\":%llu}", static_cast<unsigned long long>(errors));
    json_rows += line;
  }
  // Table heads: one column pair per peer mode.
  std::string head = "| workload | QD | local MB/s |", rule = "|---|---|---|";
  std::string cpu_head = "| workload | QD | local |", cpu_rule = "|---|---|---|";
  for (const PeerMode& m : peer_modes) {
    head += std::string(" via peer, ") + m.name + " | ratio |";
    rule += "---|---|";
    cpu_head += std::string(" ") + m.name + " |";
    cpu_rule += "---|";
  }
  head += " errors |";
  rule += "---|";
  if (json) {
    std::printf("{\"backend\":\"%s\",\"seconds\":%d,\"rounds\":%d,\"results\":[%s]}\n",
                a_describe.c_str(), seconds, rounds, json_rows.c_str());
  } else {
    std::printf("backend %s, %d s per mode in %d rounds, MB/s = 10^6 bytes/s\n\n",
                a_describe.c_str(), seconds, rounds);
    std::printf("%s\n%s\n%s", head.c_str(), rule.c_str(), rows.c_str());
    // CPU per byte: what the agents spend (user + system time of this process; tgtd, the SAN,
    // is another process) for each GB moved. Less sensitive to a neighbour's load than MB/s.
    std::printf(
        "\nagent CPU seconds per GB moved (A alone for local, A + B through the peer):\n\n"
        "%s\n%s\n%s",
        cpu_head.c_str(), cpu_rule.c_str(), cpu_rows.c_str());
  }
  server.Stop();
  std::filesystem::remove(file);
  return 0;
}
