// Metrics: Registry and Exposer wrappers and the project's standard histogram buckets.
#include "common/metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <exception>
#include <utility>

namespace vios::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}

std::string Registry::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

std::unique_ptr<Exposer> Exposer::Start(const std::string& host, uint16_t port,
                                        std::string* error) {
  // civetweb wants IPv6 literals in brackets.
  std::string address = host.find(':') != std::string::npos && host.front() != '['
                            ? "[" + host + "]:" + std::to_string(port)
                            : host + ":" + std::to_string(port);
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address, 2);
    auto ports = exposer->GetListeningPorts();
    if (ports.empty() || ports.front() <= 0 || ports.front() > 65535) {
      *error = "metrics exposer on " + address + " reports no listening port";
      return nullptr;
    }
    return std::unique_ptr<Exposer>(
        new Exposer(std::move(exposer), static_cast<uint16_t>(ports.front())));
  } catch (const std::exception& e) {
    *error = "metrics exposer cannot listen on " + address + ": " + e.what();
    return nullptr;
  }
}

Exposer::Exposer(std::unique_ptr<prometheus::Exposer> exposer, uint16_t port)
    : exposer_(std::move(exposer)), port_(port) {}

Exposer::~Exposer() = default;

void Exposer::Expose(const Registry& registry) { exposer_->RegisterCollectable(registry.shared()); }

void Exposer::ExposeCollectable(const std::shared_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

prometheus::Histogram::BucketBoundaries IoLatencyBuckets() {
  prometheus::Histogram::BucketBoundaries bounds;
  for (double decade = 1e-5; decade < 10.0; decade *= 10.0) {
    bounds.push_back(decade);
    bounds.push_back(decade * 2.5);
    bounds.push_back(decade * 5.0);
  }
  bounds.push_back(10.0);
  return bounds;
}

prometheus::Histogram::BucketBoundaries OperationLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

prometheus::Histogram::BucketBoundaries SizeBuckets() {
  prometheus::Histogram::BucketBoundaries bounds;
  for (double size = 512; size <= 16.0 * 1024 * 1024; size *= 2) {
    bounds.push_back(size);
  }
  return bounds;
}

}  // namespace vios::metrics
