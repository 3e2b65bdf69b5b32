// conns — the plan of a run (see plan.hpp).
#include "plan.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "../common/system.hpp"

namespace bench {
namespace conns {

// Descriptors a process keeps for itself (epoll, timerfd, eventfd, listener, its reserve,
// stdio, the shared mapping...), never given to connections.
constexpr long kReservedDescriptors = 64;

namespace {

uint64_t ephemeral_ports() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  uint64_t low = 0, high = 0;
  in >> low >> high;
  return high > low ? high - low + 1 : 0;
}

}  // namespace

// Connections one process may hold: its descriptor limit (raised to the hard limit) minus
// what it keeps for itself; a client also needs a local port per connection from its one
// source address.
std::string make_plan(const Options& o, Plan* plan) {
  long limit = sys::raise_nofile();
  if (limit <= kReservedDescriptors * 2) return "the descriptor limit (" + std::to_string(limit) + ") is too low";
  plan->descriptor_limit = limit;
  plan->per_process = static_cast<uint64_t>(limit - kReservedDescriptors);
  // The kernel finds a free local port by probing the range: past about a third used, each
  // connect() probes long (and ports of earlier runs may sit in TIME_WAIT), so a client uses
  // another source address for every third of the range.
  plan->ports_per_source = std::max<uint64_t>(ephemeral_ports() / 3, 1000);
  uint64_t processes = (o.conns + plan->per_process - 1) / plan->per_process;
  if (processes > static_cast<uint64_t>(kMaxProcesses))
    return std::to_string(o.conns) + " connections need " + std::to_string(processes) +
           " processes per side, more than " + std::to_string(kMaxProcesses);
  plan->workers = plan->clients = static_cast<int>(processes);
  const uint64_t busiest = (o.conns + processes - 1) / processes;
  plan->sources_per_client = static_cast<int>((busiest + plan->ports_per_source - 1) / plan->ports_per_source);
  // The steering program counts listeners in the order they listen; a worker's R reactors
  // listen in an order of their own, so R > 1 keeps to one worker (and its descriptor limit).
  if (o.reactors > 1 && plan->workers > 1)
    return "--reactors " + std::to_string(o.reactors) + " needs --conns <= " + std::to_string(plan->per_process) +
           " (one server process)";
  return "";
}

int first_source(const Plan& plan, int run) { return run * plan.sources_per_client; }

// Loopback sockets that have carried traffic keep about half a page each charged to TCP
// (measured: 807,794 pages for 1.65M sockets); past net.ipv4.tcp_mem's third value new
// connections fail.
std::string tcp_memory_warning(uint64_t conns) {
  std::ifstream in("/proc/sys/net/ipv4/tcp_mem");
  uint64_t low = 0, pressure = 0, high = 0;
  if (!(in >> low >> pressure >> high)) return "";
  uint64_t needed = conns;  // 2N sockets x half a page
  if (needed < high * 9 / 10) return "";
  return "warning: " + std::to_string(conns) + " connections may need about " + std::to_string(needed) +
         " pages of TCP memory, near or past net.ipv4.tcp_mem's limit of " + std::to_string(high) +
         " (connects will fail there); raise it: sysctl -w net.ipv4.tcp_mem=\"" + std::to_string(needed) + " " +
         std::to_string(needed * 3 / 2) + " " + std::to_string(needed * 2) + "\"";
}

std::string reserve_port(uint16_t wanted, int* fd, uint16_t* port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(wanted);
  if (wanted != 0) {
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address);
    int error = errno;
    ::close(probe);
    if (rc != 0) return "port " + std::to_string(wanted) + " is busy (" + std::strerror(error) + ")";
  }
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  socklen_t length = sizeof address;
  if (bind(*fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(*fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return std::string("cannot bind 127.0.0.1: ") + std::strerror(errno);
  *port = ntohs(address.sin_port);
  return "";
}

}  // namespace conns
}  // namespace bench
