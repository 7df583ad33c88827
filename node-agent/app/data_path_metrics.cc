#include "node-agent/app/data_path_metrics.h"

#include <algorithm>
#include <limits>

namespace vios::agent {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

ClientMetric Sample(std::vector<ClientMetric::Label> labels, double value, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Gauge) {
    m.gauge.value = value;
  } else {
    m.counter.value = value;
  }
  return m;
}

double Load(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

}  // namespace

void DataPathCollector::AddIo(std::string scope, std::string name,
                              const backend::IoCounters* counters,
                              std::shared_ptr<const void> owner) {
  std::lock_guard lock(mu_);
  io_.push_back(IoSource{std::move(scope), std::move(name), counters, std::move(owner)});
}

void DataPathCollector::AddPort(std::shared_ptr<iscsi::Target> target) {
  std::lock_guard lock(mu_);
  ports_.push_back(std::move(target));
}

void DataPathCollector::Remove(const std::string& name) {
  std::lock_guard lock(mu_);
  std::erase_if(io_, [&](const IoSource& s) { return s.name == name; });
  std::erase_if(ports_, [&](const auto& t) { return t->iqn() == name; });
}

std::vector<MetricFamily> DataPathCollector::Collect() const {
  MetricFamily ops =
      Family("vios_io_operations_total", "Completed I/O operations by object and operation.",
             MetricType::Counter);
  MetricFamily bytes = Family("vios_io_bytes_total", "Bytes transferred by object and direction.",
                              MetricType::Counter);
  MetricFamily errors =
      Family("vios_io_errors_total", "Failed I/O operations by object.", MetricType::Counter);
  MetricFamily latency = Family("vios_io_latency_seconds", "I/O latency by object, all operations.",
                                MetricType::Histogram);
  MetricFamily sessions = Family("vios_port_sessions",
                                 "iSCSI sessions logged in to a virtual port.", MetricType::Gauge);
  MetricFamily logins =
      Family("vios_port_logins_total", "Login attempts on a virtual port.", MetricType::Counter);
  MetricFamily protocol =
      Family("vios_port_protocol_errors_total",
             "PDUs rejected or connections closed for protocol violations.", MetricType::Counter);

  std::lock_guard lock(mu_);
  for (const IoSource& s : io_) {
    const backend::IoCounters& c = *s.counters;
    auto labels = [&](const char* op) {
      std::vector<ClientMetric::Label> l{{"name", s.name}, {"scope", s.scope}};
      if (op) l.push_back({"op", op});
      return l;
    };
    ops.metric.push_back(Sample(labels("read"), Load(c.reads), MetricType::Counter));
    ops.metric.push_back(Sample(labels("write"), Load(c.writes), MetricType::Counter));
    ops.metric.push_back(Sample(labels("other"), Load(c.others), MetricType::Counter));
    bytes.metric.push_back(Sample(labels("read"), Load(c.read_bytes), MetricType::Counter));
    bytes.metric.push_back(Sample(labels("write"), Load(c.write_bytes), MetricType::Counter));
    errors.metric.push_back(Sample(labels(nullptr), Load(c.errors), MetricType::Counter));

    ClientMetric h;
    h.label = labels(nullptr);
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
    latency.metric.push_back(std::move(h));
  }
  for (const auto& target : ports_) {
    const iscsi::TargetCounters& c = target->counters();
    std::vector<ClientMetric::Label> port{{"port", target->iqn()}};
    sessions.metric.push_back(Sample(port, Load(c.active_sessions), MetricType::Gauge));
    auto with = [&](const char* key, const char* value) {
      auto l = port;
      l.push_back({key, value});
      return l;
    };
    logins.metric.push_back(Sample(with("result", "success"), Load(c.logins), MetricType::Counter));
    logins.metric.push_back(
        Sample(with("result", "failure"), Load(c.login_failures), MetricType::Counter));
    protocol.metric.push_back(Sample(port, Load(c.protocol_errors), MetricType::Counter));
  }
  return {std::move(ops),      std::move(bytes),  std::move(errors),  std::move(latency),
          std::move(sessions), std::move(logins), std::move(protocol)};
}

}  // namespace vios::agent
