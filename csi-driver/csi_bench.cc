// vios-csi-bench: CreateVolume/DeleteVolume latency and throughput against a running vios-csi
// controller (bench/csi/run drives it against the real kube-apiserver; figures in
// bench/csi/README.md).
//
//   vios-csi-bench --endpoint unix:///tmp/csi.sock --count 200 --parallel 8
//                  --size 16777216 --param pool=pool0 [--param transport=fuse] [--prefix b1]
//
// Creates --count volumes from --parallel client threads (each thread its own channel, one call
// at a time, like external-provisioner workers), then deletes them the same way. Prints one JSON
// object: per phase count, errors, wall seconds, operations/s and latency p50/p90/p99/max in
// milliseconds. Exit 1 when any call failed (the first errors are printed on stderr).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "proto/csi.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string endpoint;
  int count = 200;
  int parallel = 1;
  int64_t size = 16 << 20;
  std::map<std::string, std::string> params;
  std::string prefix = "bench";
};

struct Phase {
  std::vector<double> latencies_ms;
  int errors = 0;
  double seconds = 0;
  std::vector<std::string> first_errors;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

nlohmann::json Summary(const Phase& ph) {
  const double n = static_cast<double>(ph.latencies_ms.size());
  double sum = 0;
  for (double x : ph.latencies_ms) sum += x;
  return {{"count", ph.latencies_ms.size()},
          {"errors", ph.errors},
          {"seconds", ph.seconds},
          {"ops_per_second", ph.seconds > 0 ? n / ph.seconds : 0},
          {"mean_ms", n > 0 ? sum / n : 0},
          {"p50_ms", Percentile(ph.latencies_ms, 0.50)},
          {"p90_ms", Percentile(ph.latencies_ms, 0.90)},
          {"p99_ms", Percentile(ph.latencies_ms, 0.99)},
          {"max_ms", Percentile(ph.latencies_ms, 1.0)}};
}

// Run calls op(i) for i in [0, count) from `parallel` threads; op returns the call's status.
template <typename Op>
Phase Run(const Options& opt, Op op) {
  Phase ph;
  std::mutex mu;
  std::atomic<int> next{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < opt.parallel; ++t) {
    threads.emplace_back([&] {
      auto channel = grpc::CreateChannel(opt.endpoint, grpc::InsecureChannelCredentials());
      ::csi::v1::Controller::Stub stub(channel);
      for (int i = next++; i < opt.count; i = next++) {
        auto t0 = Clock::now();
        grpc::Status s = op(stub, i);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu);
        ph.latencies_ms.push_back(ms);
        if (!s.ok()) {
          ++ph.errors;
          if (ph.first_errors.size() < 5) {
            ph.first_errors.push_back(std::to_string(static_cast<int>(s.error_code())) + ": " +
                                      s.error_message());
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ph.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return ph;
}

void Deadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
}

bool ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--endpoint") {
      opt->endpoint = value();
    } else if (a == "--count") {
      opt->count = std::stoi(value());
    } else if (a == "--parallel") {
      opt->parallel = std::stoi(value());
    } else if (a == "--size") {
      opt->size = std::stoll(value());
    } else if (a == "--prefix") {
      opt->prefix = value();
    } else if (a == "--param") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return false;
      opt->params[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      return false;
    }
  }
  return !opt->endpoint.empty() && opt->count > 0 && opt->parallel > 0 && opt->size > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    if (!ParseArgs(argc, argv, &opt)) {
      std::cerr << "usage: vios-csi-bench --endpoint unix://SOCK [--count N] [--parallel P] "
                   "[--size BYTES] [--param k=v]... [--prefix NAME]\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "vios-csi-bench: bad argument: " << e.what() << "\n";
    return 2;
  }
  std::vector<std::string> ids(static_cast<size_t>(opt.count));
  std::mutex ids_mu;
  Phase create = Run(opt, [&](::csi::v1::Controller::Stub& stub, int i) {
    ::csi::v1::CreateVolumeRequest req;
    req.set_name(opt.prefix + "-" + std::to_string(i));
    req.mutable_capacity_range()->set_required_bytes(opt.size);
    auto* cap = req.add_volume_capabilities();
    cap->mutable_mount()->set_fs_type("ext4");
    cap->mutable_access_mode()->set_mode(
        ::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    for (const auto& [k, v] : opt.params) (*req.mutable_parameters())[k] = v;
    ::csi::v1::CreateVolumeResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = stub.CreateVolume(&ctx, req, &resp);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(ids_mu);
      ids[static_cast<size_t>(i)] = resp.volume().volume_id();
    }
    return s;
  });
  Phase del = Run(opt, [&](::csi::v1::Controller::Stub& stub, int i) {
    std::string id;
    {
      std::lock_guard<std::mutex> lock(ids_mu);
      id = ids[static_cast<size_t>(i)];
    }
    if (id.empty()) return grpc::Status(grpc::StatusCode::CANCELLED, "not created");
    ::csi::v1::DeleteVolumeRequest req;
    req.set_volume_id(id);
    ::csi::v1::DeleteVolumeResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    return stub.DeleteVolume(&ctx, req, &resp);
  });
  nlohmann::json out = {{"count", opt.count},
                        {"parallel", opt.parallel},
                        {"size_bytes", opt.size},
                        {"create", Summary(create)},
                        {"delete", Summary(del)}};
  std::cout << out.dump(2) << std::endl;
  for (const auto& e : create.first_errors) std::cerr << "CreateVolume error " << e << "\n";
  for (const auto& e : del.first_errors) std::cerr << "DeleteVolume error " << e << "\n";
  return create.errors + del.errors == 0 ? 0 : 1;
}
