// RpcMetrics (see rpc_metrics.h).
#include "csi-driver/rpc_metrics.h"

#include "common/log/log.h"

namespace vios::csi {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "OTHER";
  }
}

RpcMetrics::RpcMetrics(metrics::Registry& registry)
    : calls_(prometheus::BuildCounter()
                 .Name("vios_csi_rpc_total")
                 .Help("CSI calls handled, by RPC and gRPC code")
                 .Register(registry.registry())),
      errors_(prometheus::BuildCounter()
                  .Name("vios_csi_rpc_errors_total")
                  .Help("CSI calls that failed, by RPC and gRPC code")
                  .Register(registry.registry())),
      latency_(prometheus::BuildHistogram()
                   .Name("vios_csi_rpc_duration_seconds")
                   .Help("CSI call latency by RPC")
                   .Register(registry.registry())) {}

void RpcMetrics::Record(const std::string& rpc, grpc::StatusCode code, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  calls_.Add({{"rpc", rpc}, {"code", CodeName(code)}}).Increment();
  if (code != grpc::StatusCode::OK)
    errors_.Add({{"rpc", rpc}, {"code", CodeName(code)}}).Increment();
  latency_.Add({{"rpc", rpc}}, metrics::OperationLatencyBuckets()).Observe(seconds);
}

grpc::Status RpcMetrics::Call::Done(grpc::Status status) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  owner_.Record(rpc_, status.error_code(), seconds);
  if (!status.ok()) {
    VIOS_LOG(kInfo, "csi call failed")
        .Field("rpc", rpc_)
        .Field("code", CodeName(status.error_code()))
        .Field("message", status.error_message());
  } else {
    VIOS_LOG(kDebug, "csi call").Field("rpc", rpc_).Field("seconds", seconds);
  }
  return status;
}

}  // namespace vios::csi
