#pragma once

#include <signal.h>

namespace streamgrid {

// Shutdown on SIGINT/SIGTERM for a process's main(). Construct it first in
// main(), before any thread starts: it blocks both signals in the calling
// thread, so every thread started later inherits the mask and the signals are
// only ever taken by Wait(). It also ignores SIGPIPE, so a peer closing a socket
// is an error code rather than the end of the process.
class TerminationSignals {
 public:
  TerminationSignals();
  TerminationSignals(const TerminationSignals&) = delete;
  TerminationSignals& operator=(const TerminationSignals&) = delete;

  // Blocks until SIGINT or SIGTERM arrives; returns its number.
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace streamgrid
