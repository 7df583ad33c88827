// PrCollector: reservation metrics at scrape time.
#include "node-agent/reservation/pr_metrics.h"

#include <algorithm>
#include <limits>

namespace vios::reservation {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr const char* kActionNames[PrCounters::kActions] = {"register",
                                                            "reserve",
                                                            "release",
                                                            "clear",
                                                            "preempt",
                                                            "preempt_and_abort",
                                                            "register_and_ignore_existing_key",
                                                            "register_and_move",
                                                            "invalid"};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, const std::atomic<uint64_t>& v) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(v.load(std::memory_order_relaxed));
  return m;
}

}  // namespace

const char* ServiceActionName(size_t index) {
  return index < PrCounters::kActions ? kActionNames[index] : "invalid";
}

void PrCollector::Add(std::string volume,
                      std::shared_ptr<const LocalPersistentReservations> policy) {
  std::lock_guard lock(mu_);
  std::erase_if(sources_, [&](const Source& s) { return s.volume == volume; });
  sources_.push_back(Source{std::move(volume), std::move(policy)});
}

void PrCollector::Remove(const std::string& volume) {
  std::lock_guard lock(mu_);
  std::erase_if(sources_, [&](const Source& s) { return s.volume == volume; });
}

std::vector<MetricFamily> PrCollector::Collect() const {
  MetricFamily ops =
      Family("vios_pr_operations_total",
             "PERSISTENT RESERVE OUT commands by volume and service action.", MetricType::Counter);
  MetricFamily conflicts = Family(
      "vios_pr_conflicts_total",
      "Commands answered RESERVATION CONFLICT, I/O and reservation commands.", MetricType::Counter);
  MetricFamily preemptions = Family(
      "vios_pr_preemptions_total",
      "PREEMPT and PREEMPT AND ABORT commands that removed registrations.", MetricType::Counter);
  MetricFamily latency =
      Family("vios_pr_notify_latency_seconds",
             "Time for every peer serving the volume to apply a reservation change.",
             MetricType::Histogram);
  MetricFamily errors =
      Family("vios_pr_store_errors_total", "Reservation state reads and writes that failed.",
             MetricType::Counter);
  MetricFamily races = Family(
      "vios_pr_store_conflicts_total",
      "Reservation state writes that lost a race with another agent (recomputed and retried).",
      MetricType::Counter);

  std::array<uint64_t, PrCounters::kNotifyBoundsSeconds.size() + 1> buckets{};
  uint64_t sum_ns = 0;
  std::lock_guard lock(mu_);
  for (const Source& s : sources_) {
    const PrCounters& c = s.policy->counters();
    for (size_t i = 0; i < PrCounters::kActions; ++i) {
      ops.metric.push_back(Counter({{"volume", s.volume}, {"service_action", kActionNames[i]}},
                                   c.prout_by_action[i]));
    }
    conflicts.metric.push_back(Counter({{"volume", s.volume}}, c.conflicts));
    preemptions.metric.push_back(Counter({{"volume", s.volume}}, c.preemptions));
    errors.metric.push_back(Counter({{"volume", s.volume}}, c.store_errors));
    races.metric.push_back(Counter({{"volume", s.volume}}, c.store_conflicts));
    for (size_t i = 0; i < buckets.size(); ++i) {
      buckets[i] += c.notify_buckets[i].load(std::memory_order_relaxed);
    }
    sum_ns += c.notify_sum_ns.load(std::memory_order_relaxed);
  }
  ClientMetric h;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    cumulative += buckets[i];
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < PrCounters::kNotifyBoundsSeconds.size()
                             ? PrCounters::kNotifyBoundsSeconds[i]
                             : std::numeric_limits<double>::infinity();
    h.histogram.bucket.push_back(bucket);
  }
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
  latency.metric.push_back(std::move(h));
  return {std::move(ops),     std::move(conflicts), std::move(preemptions),
          std::move(latency), std::move(errors),    std::move(races)};
}

}  // namespace vios::reservation
