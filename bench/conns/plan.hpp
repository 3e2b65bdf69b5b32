// conns — the plan of a run, made from what the machine allows before anything starts: how
// many connections one process may hold (the descriptor limit), how many server and client
// processes N needs, how many connections share a client source address, and the port the
// whole invocation keeps reserved.  Each step returns an error text ("" when fine), which the
// caller prints as a usage error: nothing has started yet.
#pragma once

#include <cstdint>
#include <string>

#include "protocol.hpp"

namespace bench {
namespace conns {

struct Plan {
  long descriptor_limit = 0;
  uint64_t per_process = 0;       // connections one process may hold
  uint64_t ports_per_source = 0;  // connections per client source address
  int sources_per_client = 0;     // source addresses the busiest client uses
  int workers = 0;
  int clients = 0;
};

std::string make_plan(const Options& options, Plan* plan);

// The first source number of an invocation's run number `run` (0, 1, ...): each run connects
// from addresses of its own, so the ports an earlier run left in TIME_WAIT never slow its
// connects.
int first_source(const Plan& plan, int run);

// Holds the port for the whole run: a bound (not listening) SO_REUSEPORT socket in *fd, so
// nobody else can take it between runs and the workers can join it.  A port someone else
// uses is an error.
std::string reserve_port(uint16_t wanted, int* fd, uint16_t* port);

// A warning when N connections (2N sockets) may not fit in net.ipv4.tcp_mem; "" otherwise.
std::string tcp_memory_warning(uint64_t conns);

}  // namespace conns
}  // namespace bench
