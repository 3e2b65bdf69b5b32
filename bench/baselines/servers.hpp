// servers — the baseline heartbeat servers `conns` measures evwheel against.  Each speaks the
// same codecs and keeps the same rules as the evwheel server (ping every P, close a peer
// silent for I), on the same loop skeleton (server_core.hpp: one send per ping, one recv per
// pong); they differ only in how they time their connections:
//
//   lazy   one timer per connection in a binary heap, re-armed only when it fires: a read
//          stores the time and nothing else, and the timer, when it fires early, re-arms
//          itself at min(next ping, last read + I) — libev's "be smart about timeouts", the
//          strong per-connection-timer design;
//   rearm  the same heap, but the timer is stopped and started again on every read (what a
//          libuv user's uv_timer_start in the read callback does): shows what the lazy rule
//          saves;
//   sweep  no timer structure at all: dense arrays indexed by slot, one periodic timerfd tick
//          that pings the next slice of the connections and scans every last-read time for
//          silence — the least work a heartbeat server can do, the user-space yardstick.
//
// Each is a worker process body, like conns::run_wheel_worker: it returns the exit status.
#pragma once

#include "../conns/protocol.hpp"

namespace bench {
namespace baselines {

int run_lazy_worker(const conns::Options& options, const conns::Role& role);
int run_rearm_worker(const conns::Options& options, const conns::Role& role);
int run_sweep_worker(const conns::Options& options, const conns::Role& role);

}  // namespace baselines
}  // namespace bench
