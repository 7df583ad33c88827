// RouterMetrics: scrape-time families from Router, Path and PathProber counters
// (router_metrics.h).
#include "node-agent/router/router_metrics.h"

#include <algorithm>
#include <limits>

namespace vios::router {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void Add(MetricFamily& family, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (family.type == MetricType::Gauge) {
    m.gauge.value = value;
  } else {
    m.counter.value = value;
  }
  family.metric.push_back(std::move(m));
}

double Load(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

ClientMetric Histogram(Labels labels, const backend::IoCounters& c) {
  ClientMetric h;
  h.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < backend::IoCounters::kBuckets; ++i) {
    cumulative += c.latency_buckets[i].load(std::memory_order_relaxed);
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < backend::IoCounters::kLatencyBoundsUs.size()
                             ? static_cast<double>(backend::IoCounters::kLatencyBoundsUs[i]) / 1e6
                             : std::numeric_limits<double>::infinity();
    h.histogram.bucket.push_back(bucket);
  }
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = Load(c.latency_sum_ns) / 1e9;
  return h;
}

}  // namespace

void RouterMetrics::AddRouter(std::string pool, std::string backend, const Router* router) {
  std::lock_guard<std::mutex> lock(mu_);
  routers_.push_back({std::move(pool), std::move(backend), router});
}

void RouterMetrics::RemoveRouter(const std::string& pool, const std::string& backend) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(routers_, [&](const Source& s) { return s.pool == pool && s.backend == backend; });
}

void RouterMetrics::SetServedSource(std::function<std::map<std::string, uint64_t>()> served) {
  std::lock_guard<std::mutex> lock(mu_);
  served_ = std::move(served);
}

std::vector<MetricFamily> RouterMetrics::Collect() const {
  MetricFamily health =
      Family("vios_path_health", "Health of each path to a backend: 1 for the current state.",
             MetricType::Gauge);
  MetricFamily rerouted =
      Family("vios_rerouted", "1 while a backend's I/O is rerouted through peer agents.",
             MetricType::Gauge);
  MetricFamily reroutes =
      Family("vios_reroutes_total", "Reroutes started, by what found the local path lost.",
             MetricType::Counter);
  MetricFamily rerouted_seconds = Family(
      "vios_rerouted_seconds_total", "Time a backend's I/O spent rerouted.", MetricType::Counter);
  MetricFamily peer_ops =
      Family("vios_peer_io_operations_total", "I/O sent to a backend through a peer agent.",
             MetricType::Counter);
  MetricFamily peer_bytes =
      Family("vios_peer_io_bytes_total",
             "Bytes sent to or read from a backend through a peer agent.", MetricType::Counter);
  MetricFamily peer_latency =
      Family("vios_peer_io_latency_seconds", "Latency of I/O through a peer agent, all operations.",
             MetricType::Histogram);
  MetricFamily transport =
      Family("vios_peer_io_transport_total",
             "I/O forwarded through a peer agent, by transport: data (the peer data channel), "
             "stream (gRPC IoStream, while the data channel is not connected), unary.",
             MetricType::Counter);
  MetricFamily data_channel =
      Family("vios_peer_data_channel",
             "1 for the protection (encrypt, integrity) of a peer path's connected data channel; "
             "0 for both while none is connected (rerouted I/O then uses the gRPC stream).",
             MetricType::Gauge);
  MetricFamily served =
      Family("vios_peer_io_served_total",
             "I/O this agent executed on its local paths for a peer agent.", MetricType::Counter);
  MetricFamily probes =
      Family("vios_path_probes_total", "Active probes of the local path.", MetricType::Counter);

  std::lock_guard<std::mutex> lock(mu_);
  for (const Source& s : routers_) {
    const Labels base{{"backend", s.backend}, {"pool", s.pool}};
    auto with = [&](std::initializer_list<ClientMetric::Label> extra) {
      Labels l = base;
      l.insert(l.end(), extra);
      return l;
    };
    for (const std::shared_ptr<Path>& path : s.router->SharedPaths()) {
      const std::string name = path->Name();
      const PathHealth now = path->Health();
      for (PathHealth state : {PathHealth::kHealthy, PathHealth::kDegraded, PathHealth::kLost}) {
        Add(health, with({{"path", name}, {"state", PathHealthLabel(state)}}),
            state == now ? 1 : 0);
      }
      if (name.rfind("peer:", 0) != 0) {
        continue;
      }
      const std::string peer = name.substr(5);
      const backend::IoCounters& c = path->counters();
      Add(peer_ops, with({{"op", "read"}, {"peer", peer}}), Load(c.reads));
      Add(peer_ops, with({{"op", "write"}, {"peer", peer}}), Load(c.writes));
      Add(peer_ops, with({{"op", "other"}, {"peer", peer}}), Load(c.others));
      Add(peer_bytes, with({{"op", "read"}, {"peer", peer}}), Load(c.read_bytes));
      Add(peer_bytes, with({{"op", "write"}, {"peer", peer}}), Load(c.write_bytes));
      peer_latency.metric.push_back(Histogram(with({{"peer", peer}}), c));
      for (const auto& [kind, count] : path->TransportCounts()) {
        Add(transport, with({{"peer", peer}, {"transport", kind}}), static_cast<double>(count));
      }
      const char* protection = path->DataChannel();
      for (const char* p : {"encrypt", "integrity"}) {
        Add(data_channel, with({{"peer", peer}, {"protection", p}}),
            protection != nullptr && std::string(protection) == p ? 1 : 0);
      }
    }
    const Router::Stats st = s.router->GetStats();
    Add(rerouted, base, s.router->Rerouting() ? 1 : 0);
    Add(reroutes, with({{"reason", "io_error"}}), static_cast<double>(st.reroutes_io_error));
    Add(reroutes, with({{"reason", "io_timeout"}}), static_cast<double>(st.reroutes_io_timeout));
    Add(reroutes, with({{"reason", "probe"}}), static_cast<double>(st.reroutes_probe));
    Add(reroutes, with({{"reason", "other"}}), static_cast<double>(st.reroutes_other));
    Add(rerouted_seconds, base, static_cast<double>(st.rerouted_ns) / 1e9);
    if (const PathProber* prober = s.router->prober()) {
      const PathProber::Stats ps = prober->GetStats();
      Add(probes, with({{"result", "success"}}), static_cast<double>(ps.success));
      Add(probes, with({{"result", "failure"}}), static_cast<double>(ps.failure));
      Add(probes, with({{"result", "timeout"}}), static_cast<double>(ps.timeout));
    }
  }
  if (served_) {
    for (const auto& [from, count] : served_()) {
      Add(served, {{"from", from}}, static_cast<double>(count));
    }
  }
  return {std::move(health),           std::move(rerouted),  std::move(reroutes),
          std::move(rerouted_seconds), std::move(peer_ops),  std::move(peer_bytes),
          std::move(peer_latency),     std::move(transport), std::move(data_channel),
          std::move(served),           std::move(probes)};
}

}  // namespace vios::router
