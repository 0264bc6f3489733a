// SPDX-License-Identifier: Apache-2.0
// hubprobed: the agent daemon. Its configuration, sessions, exporter and systemd integration are the
// next milestone; until then it says so instead of pretending to run.
#include <cstdio>
#include <cstring>

#include "hubprobe_version.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("hubprobed %s\n", HUBPROBE_VERSION);
    return 0;
  }
  std::fprintf(stderr,
               "hubprobed %s: the agent daemon is not implemented yet; use `hubprobe reflect` and "
               "`hubprobe ping` meanwhile\n",
               HUBPROBE_VERSION);
  return 1;
}
