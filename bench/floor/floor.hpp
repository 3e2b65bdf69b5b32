// floor — what the kernel alone charges for one heartbeat message on this machine: a 4-byte
// send on a loopback TCP connection, its epoll readiness and its recv, with no event loop or
// framing of ours in between.  Whatever a heartbeat server spends per message above this
// figure is its own; below it, nothing can go.
//
// The measurement runs in the calling process and thread (`floor` mode prints it; `conns`
// calls it in the same run so its per-ping cost sits next to the floor of the same machine).
#pragma once

#include <cstdint>

namespace bench {

struct FloorResult {
  int pairs = 0;                        // connection pairs used (the request, capped by descriptors)
  uint64_t messages = 0;                // batched messages sent and received
  double us_per_message = 0;            // batched: process CPU (user + sys) per message
  double send_us = 0;                   // batched: thread CPU per message in the send phase
  double recv_us = 0;                   // batched: thread CPU per message in epoll_wait + recv
  double unbatched_us_per_message = 0;  // one send, one epoll_wait, one recv per message
};

// Measures in this process (pinned to `cpu` when >= 0, restored afterwards) for about
// `seconds`: two thirds batched rounds (a send on every pair, then epoll_wait batches of up to
// 1024 events and a recv per event until every message arrived), one third unbatched (per
// message: send, epoll_wait, recv).  `pairs` is capped so that the 2 * pairs descriptors fit
// under RLIMIT_NOFILE next to the ones already open; the result says how many were used.
// Throws std::system_error when sockets cannot be set up or an I/O call fails.
FloorResult measure_floor(int pairs, double seconds, int cpu);

// The most pairs measure_floor() can open now: (RLIMIT_NOFILE - open descriptors - a few
// spare) / 2, raising the soft limit to the hard one first.
int floor_pair_limit();

}  // namespace bench
