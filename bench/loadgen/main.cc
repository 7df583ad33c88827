// vios-loadgen: iSCSI load generator with block verification (bench/README.md).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/loadgen/engine.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/report.h"

namespace {

void OnSignal(int /*signo*/) { vios::bench::RequestStop(); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string error;
  auto options = vios::bench::ParseOptions(args, &error);
  if (!options) {
    if (error.empty()) {
      std::fputs(vios::bench::Usage().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "vios-loadgen: %s\n\n%s", error.c_str(), vios::bench::Usage().c_str());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  vios::bench::Engine engine(*options);
  if (!engine.Connect(&error)) {
    std::fprintf(stderr, "vios-loadgen: %s\n", error.c_str());
    return 2;
  }
  vios::bench::RunResult result = engine.Run();
  std::string report = options->json ? vios::bench::FormatJson(*options, result)
                                     : vios::bench::FormatText(*options, result);
  std::fputs(report.c_str(), stdout);
  if (!result.fatal_error.empty()) {
    std::fprintf(stderr, "vios-loadgen: %s\n", result.fatal_error.c_str());
    return 1;
  }
  return result.io_errors != 0 || result.verify.failures != 0 ? 1 : 0;
}
