// Report: vios-loadgen's results as text for people and as one JSON object for scripts.
//
// JSON shape (latencies in microseconds; MB/s in 10^6 bytes per second):
//   {"target":..,"rw":"randwrite","bs":4096,"qd":32,"elapsed_s":10.0,"ios":..,"iops":..,
//    "mbps":..,"io_errors":0,"read":{"ios":..,"bytes":..,"iops":..,"mbps":..,
//    "latency_us":{"mean":..,"p50":..,"p90":..,"p99":..,"p99_9":..,"max":..}},"write":{..},
//    "latency_us":{..},"verify":{"enabled":true,"blocks_checked":..,"readback_blocks":..,
//    "failures":0,"failures_by_kind":{}},"error":""}
#pragma once

#include <string>

#include "bench/loadgen/engine.h"
#include "bench/loadgen/options.h"

namespace vios::bench {

std::string FormatJson(const Options& options, const RunResult& result);
std::string FormatText(const Options& options, const RunResult& result);

}  // namespace vios::bench
