// streamgrid-probe: describes uploaded files for the web server, which starts
// it and talks to it over an inherited socket (src/probe/probe_protocol.h).
// It is given open descriptors, never paths, and reads nothing else.

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "probe/media_prober.h"

int main(int argc, char** argv) {
  int fd = -1;
  bool test_hooks = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--fd=")) {
      fd = std::atoi(argv[i] + 5);
    } else if (arg == "--test-hooks") {
      test_hooks = true;
    } else {
      fd = -1;
      break;
    }
  }
  if (fd < 0) {
    static constexpr char kUsage[] =
        "usage: streamgrid-probe --fd=N\n"
        "Started by streamgrid-web, which sends it the files to describe over socket N.\n";
    [[maybe_unused]] auto n = ::write(2, kUsage, sizeof(kUsage) - 1);
    return 2;
  }
  return streamgrid::probe::ServeProbeRequests(fd, test_hooks);
}
