// Metrics: a thin layer over prometheus-cpp shared by every vios component (DESIGN.md §9).
//
// One Registry per process; each component declares all its families on it once, at
// construction (STYLE.md: statistics declared together). An Exposer serves the registry on
// http://host:port/metrics.
//
//   vios::metrics::Registry registry;
//   auto& ios = prometheus::BuildCounter().Name("vios_port_ios_total").Help("I/Os")
//                   .Register(registry.registry());
//   auto& reads = ios.Add({{"port", "pvc-1"}, {"op", "read"}});   // keep the result; Add once.
//   std::string error;
//   auto exposer = vios::metrics::Exposer::Start("127.0.0.1", 0, &error);
//   exposer->Expose(registry);   // exposer->port() is the bound port.
//
// Labels must be bounded: name ports, volumes, backends, ops, result classes; never LBAs,
// request ids, error strings or anything an initiator chooses freely.
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <string>

namespace vios::metrics {

// Registry holds the process's prometheus::Registry (shared with the Exposer that serves it).
class Registry {
 public:
  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // registry is what prometheus::Build*().Register() takes.
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared() const { return registry_; }
  // Serialize renders the current values in the Prometheus text format (tests, debug dumps).
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

// Exposer serves registries over HTTP on /metrics. Its destructor takes about 2 s (civetweb's
// worker shutdown); keep one per process.
class Exposer {
 public:
  // Start binds host:port; port 0 picks a free port (read it back with port()). On failure it
  // returns nullptr and sets *error (prometheus-cpp throws; we do not let that escape).
  static std::unique_ptr<Exposer> Start(const std::string& host, uint16_t port, std::string* error);
  ~Exposer();
  Exposer(const Exposer&) = delete;
  Exposer& operator=(const Exposer&) = delete;

  // port is the TCP port actually bound.
  uint16_t port() const { return port_; }
  // Expose adds a registry to /metrics. Until the first call, /metrics answers 404.
  void Expose(const Registry& registry);
  // ExposeCollectable adds a collector that builds its families at scrape time from counters the
  // data path keeps itself (lock-free atomics); the exposer holds only a weak reference.
  void ExposeCollectable(const std::shared_ptr<prometheus::Collectable>& collectable);

 private:
  Exposer(std::unique_ptr<prometheus::Exposer> exposer, uint16_t port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_;
};

// IoLatencyBuckets are histogram bucket bounds, in seconds, for storage I/O latency: roughly
// three per decade from 10 µs to 10 s (a loopback 4 KiB I/O is tens of µs; a path failover
// stall is seconds).
prometheus::Histogram::BucketBoundaries IoLatencyBuckets();

// OperationLatencyBuckets are bounds, in seconds, for control-plane operations (API calls,
// reconciles, CSI calls, PR updates): 1 ms to 60 s.
prometheus::Histogram::BucketBoundaries OperationLatencyBuckets();

// SizeBuckets are bounds, in bytes, for I/O sizes: powers of two from 512 B to 16 MiB.
prometheus::Histogram::BucketBoundaries SizeBuckets();

}  // namespace vios::metrics
