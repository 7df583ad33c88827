// IgnoreSigpipe (sigpipe.h).
#include "common/util/sigpipe.h"

#include <csignal>

namespace vios::util {

void IgnoreSigpipe() {
  static const bool done = [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      std::signal(SIGPIPE, SIG_IGN);
    }
    return true;
  }();
  (void)done;
}

}  // namespace vios::util
