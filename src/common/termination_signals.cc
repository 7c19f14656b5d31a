#include "common/termination_signals.h"

#include <pthread.h>

namespace streamgrid {

TerminationSignals::TerminationSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int TerminationSignals::Wait() {
  int received = 0;
  sigwait(&set_, &received);
  return received;
}

}  // namespace streamgrid
