// RpcMetrics: per-RPC counts, errors by gRPC code and latency of the CSI services (DESIGN.md §9),
// declared together here. Labels are bounded: the RPC name and the gRPC code name.
//
//   grpc::Status ControllerService::CreateVolume(...) {
//     auto call = metrics_.Begin("CreateVolume");
//     return call.Done(DoCreateVolume(...));
//   }
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include "common/metrics/metrics.h"

namespace vios::csi {

class RpcMetrics {
 public:
  explicit RpcMetrics(metrics::Registry& registry);

  // Call measures one RPC from Begin to Done.
  class Call {
   public:
    Call(RpcMetrics& owner, std::string rpc)
        : owner_(owner), rpc_(std::move(rpc)), start_(std::chrono::steady_clock::now()) {}
    // Done records the outcome and returns status unchanged.
    grpc::Status Done(grpc::Status status);

   private:
    RpcMetrics& owner_;
    std::string rpc_;
    std::chrono::steady_clock::time_point start_;
  };

  Call Begin(std::string rpc) { return Call(*this, std::move(rpc)); }

 private:
  void Record(const std::string& rpc, grpc::StatusCode code, double seconds);

  std::mutex mutex_;  // guards Add() on the families (prometheus-cpp's Add is thread-safe, but
                      // the label lookup is cheaper to serialize than to repeat)
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Family<prometheus::Histogram>& latency_;
};

// CodeName returns the canonical name of a gRPC code ("NOT_FOUND").
const char* CodeName(grpc::StatusCode code);

}  // namespace vios::csi
