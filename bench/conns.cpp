// conns — the coordinator of the end-to-end heartbeat bench (see conns.hpp for the protocol
// between processes).  It sizes the run from the descriptor limit, forks the server workers
// (pinned to the server core) and the client processes (pinned to the client core), drives
// the phases ramp → steady → mute → judge → teardown, reads every process's CPU time from
// /proc, and reports.
#include <linux/filter.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "conns.hpp"
#include "floor.hpp"
#include "run_queue.hpp"
#include "svg.hpp"
#include "evwheel/connection.hpp"
#include "modes.hpp"
#include "system.hpp"

namespace bench {

const char conns_usage[] =
    "evwheel-bench conns [--conns 10000] [--ping-interval-ms 1000] [--idle-timeout-ms 3000]\n"
    "                    [--duration 10] [--mute-fraction 0.1] [--codec framed|seed]\n"
    "                    [--timers wheel|heap|both] [--tick-ms 0] [--server-cpu 0]\n"
    "                    [--client-cpu 1] [--port 0] [--floor-seconds 2] [--json FILE]\n"
    "                    [--svg FILE] [--reactors 1]\n"
    "    N real loopback connections held by server worker processes pinned to one core\n"
    "    (SO_REUSEPORT, as many as the descriptor limit needs), driven by client processes\n"
    "    pinned to another (source addresses 127.0.0.2, 127.0.0.3, ...): ramp, a steady state\n"
    "    of --duration seconds, then a fraction of the connections muted (open, not answering)\n"
    "    until the idle timeout has passed, then teardown.  Reports false closes, detection\n"
    "    latency, server CPU per heartbeat, ping RTT and lateness, bytes per connection.\n"
    "    --timers heap: the same server with one binary-heap timer per connection re-armed on\n"
    "    every read (what libuv/libevent users write); both: wheel, then heap, same load.\n"
    "    First measures the kernel's floor per heartbeat message on the server core (see\n"
    "    `floor`) for --floor-seconds, and reports server CPU per heartbeat against it.\n"
    "    --svg: connections held and server CPU over time (FILE-heap.svg for the heap run).\n"
    "    --reactors R: the wheel server as one process with a ReactorPool of R threads, pinned\n"
    "    to the server CPU and the allowed CPUs after it (server CPU % is then of R cores).\n";

namespace conns {

const char* to_string(Timers timers) { return timers == Timers::wheel ? "wheel" : "heap"; }

std::string client_source(int a) {
  uint32_t low = static_cast<uint32_t>(a) + 2;
  return "127." + std::to_string((low >> 16) & 0xff) + "." + std::to_string((low >> 8) & 0xff) +
         "." + std::to_string(low & 0xff);
}

void set_error(char (&field)[kErrorSize], const std::string& message) {
  std::snprintf(field, kErrorSize, "%s", message.c_str());
}

bool attach_steering(int fd, int workers, std::string* error) {
  // A = source address (network header offset 12); low 24 bits - 2 = client number k;
  // return k mod workers, the index of the group member to receive the connection.
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_NET_OFF + 12)},
      {BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x00ffffff},
      {BPF_ALU | BPF_SUB | BPF_K, 0, 0, 2},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, static_cast<uint32_t>(workers)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0) return true;
  *error = std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno);
  return false;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Busy and total jiffies of one CPU from /proc/stat (busy includes irq and softirq time,
// which the kernel may not charge to any process).
struct CoreTimes {
  uint64_t busy = 0, total = 0;
};
CoreTimes core_times(int cpu) {
  std::ifstream in("/proc/stat");
  std::string name = "cpu" + std::to_string(cpu), word;
  CoreTimes times;
  while (in >> word) {
    if (word != name) {
      in.ignore(1 << 12, '\n');
      continue;
    }
    uint64_t field[8] = {};
    for (uint64_t& f : field) in >> f;
    for (uint64_t f : field) times.total += f;
    times.busy = times.total - field[3] - field[4];  // minus idle and iowait
    break;
  }
  return times;
}

double core_busy(const CoreTimes& a, const CoreTimes& b) {
  return b.total > a.total ? static_cast<double>(b.busy - a.busy) / static_cast<double>(b.total - a.total) : 0;
}

// How the connections are spread over processes, from the limits read at run time.
struct Plan {
  long descriptor_limit = 0;
  uint64_t per_process = 0;  // connections one process may hold
  uint64_t ports_per_source = 0;  // connections per client source address
  int workers = 0;
  int clients = 0;
};

// Descriptors a process keeps for itself (epoll, timerfd, eventfd, listener, its reserve,
// stdio, the shared mapping...), never given to connections.
constexpr long kReservedDescriptors = 64;

uint64_t ephemeral_ports() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  uint64_t low = 0, high = 0;
  in >> low >> high;
  return high > low ? high - low + 1 : 0;
}

struct TimelinePoint {
  double seconds;
  uint64_t held;
  int64_t server_cpu_ns;
  double server_cpu;  // fraction of a core since the previous point
};

struct Result {
  Timers timers = Timers::wheel;
  int workers = 0, clients = 0;
  uint64_t held = 0, failed = 0, false_closes = 0, muted = 0, detected = 0;
  uint64_t server_idle_closes = 0;
  double ramp_s = 0, connects_per_s = 0;
  double steady_s = 0;
  double server_cpu = 0, client_cpu = 0, server_core_busy = 0;
  uint64_t pongs = 0, pings = 0;
  double heartbeats_per_s = 0, us_per_heartbeat = 0;
  evwheel::Histogram rtt, lateness, detection;
  double user_bytes = 0, slab_bytes = 0, tcp_buffer_bytes = 0;
  bool slab_ok = false;
  double extrapolated = 0;
  double floor_us = 0;           // the kernel floor per message, measured first in the same run
  double client_lag_ms = 0;      // the worst lateness of any client's own loop
  double server_wait = 0, client_wait = 0;  // steady: fraction of the time runnable but not running
  double client_wait_run = 0;    // the same for the clients over the whole run, ramp included
  bool client_saturated = false;
  int leftover_processes = 0;
  std::vector<TimelinePoint> timeline;
  std::vector<SvgMarker> markers;
  std::string per_worker;     // connections held by each server worker
  std::string close_reasons;  // when anything but mutes closed: who closed what, and why
  std::string error;
};

class Run {
 public:
  Run(const Options& options, const Plan& plan, Timers timers, uint16_t port, int reserve_fd)
      : options_(options), plan_(plan), timers_(timers), port_(port), reserve_fd_(reserve_fd) {}

  Result go() {
    result_.timers = timers_;
    result_.workers = plan_.workers;
    result_.clients = plan_.clients;
    void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      result_.error = std::string("mmap: ") + std::strerror(errno);
      return result_;
    }
    shared_ = new (memory) Shared;
    if (start_workers() && start_clients()) drive();
    teardown();
    result_.timeline = std::move(timeline_);
    shared_->~Shared();
    munmap(memory, sizeof(Shared));
    return result_;
  }

 private:
  template <class Body>
  pid_t spawn(int cpu, Body&& body) {
    std::fflush(nullptr);  // the child must not flush our buffered output again
    pid_t pid = fork();
    if (pid != 0) return pid;
    ::close(reserve_fd_);
    sys::pin_to_cpu(cpu);
    int status = 1;
    try {
      status = body();
    } catch (...) {
    }
    std::fflush(nullptr);
    _exit(status);
  }

  Role role(int index) const { return Role{shared_, index, plan_.workers, port_}; }

  // Workers start one at a time: the order they listen in is their index in the SO_REUSEPORT
  // group, which the steering program relies on.
  bool start_workers() {
    for (int w = 0; w < plan_.workers; ++w) {
      Role r = role(w);
      shared_->workers[w].pid = spawn(options_.server_cpu, [&] {
        return timers_ == Timers::wheel ? run_wheel_worker(options_, r) : run_heap_worker(options_, r);
      });
      if (!wait_ready(shared_->workers[w].ready, shared_->workers[w].error, shared_->workers[w].pid))
        return false;
    }
    return true;
  }

  bool start_clients() {
    uint64_t share = options_.conns / static_cast<uint64_t>(plan_.clients);
    uint64_t extra = options_.conns % static_cast<uint64_t>(plan_.clients);
    for (int c = 0; c < plan_.clients; ++c) {
      ClientSlot& slot = shared_->clients[c];
      slot.target = share + (static_cast<uint64_t>(c) < extra ? 1 : 0);
      slot.sources = static_cast<int>((slot.target + plan_.ports_per_source - 1) / plan_.ports_per_source);
      Role r = role(c);
      slot.pid = spawn(options_.client_cpu, [&] { return run_client(options_, r); });
    }
    for (int c = 0; c < plan_.clients; ++c)
      if (!wait_ready(shared_->clients[c].ready, shared_->clients[c].error, shared_->clients[c].pid))
        return false;
    return true;
  }

  bool wait_ready(std::atomic<int>& ready, const char* error, pid_t pid) {
    auto start = Clock::now();
    while (ready.load(std::memory_order_acquire) == 0) {
      if (exited(pid) || seconds_since(start) > 30) {
        result_.error = "a process did not start";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (ready.load() > 0) return true;
    result_.error = error;
    return false;
  }

  static bool exited(pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == pid; }

  bool any_child_died() {
    for (int w = 0; w < plan_.workers; ++w)
      if (exited(shared_->workers[w].pid)) {
        shared_->workers[w].pid = 0;
        result_.error = std::string("server worker ") + std::to_string(w) + " died: " + shared_->workers[w].error;
        return true;
      }
    for (int c = 0; c < plan_.clients; ++c)
      if (exited(shared_->clients[c].pid)) {
        shared_->clients[c].pid = 0;
        result_.error = std::string("client ") + std::to_string(c) + " died: " + shared_->clients[c].error;
        return true;
      }
    return false;
  }

  // Moves every child to `phase` and waits until all have taken their sample.
  bool advance(int phase) {
    shared_->phase.store(phase, std::memory_order_release);
    auto start = Clock::now();
    for (;;) {
      bool all = true;
      for (int w = 0; w < plan_.workers; ++w) all &= shared_->workers[w].ack.load() >= phase;
      for (int c = 0; c < plan_.clients; ++c) all &= shared_->clients[c].ack.load() >= phase;
      if (all) return true;
      if (phase != kTeardown && any_child_died()) return false;
      if (seconds_since(start) > 30) {
        result_.error = "processes did not follow phase " + std::to_string(phase);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  template <class Field>
  uint64_t sum_clients(Field field) const {
    uint64_t total = 0;
    for (int c = 0; c < plan_.clients; ++c) total += (shared_->clients[c].*field).load(std::memory_order_relaxed);
    return total;
  }

  uint64_t server_open() const {
    uint64_t total = 0;
    for (int w = 0; w < plan_.workers; ++w) total += shared_->workers[w].open.load(std::memory_order_relaxed);
    return total;
  }

  // Summed over one side's processes.
  CpuTimes cpu(bool servers) const {
    CpuTimes total{0, 0};
    int n = servers ? plan_.workers : plan_.clients;
    for (int i = 0; i < n; ++i) {
      CpuTimes one = cpu_times(std::to_string(servers ? shared_->workers[i].pid : shared_->clients[i].pid));
      total.on_cpu_ns += one.on_cpu_ns;
      total.waiting_ns = one.waiting_ns < 0 || total.waiting_ns < 0 ? -1 : total.waiting_ns + one.waiting_ns;
    }
    return total;
  }
  int64_t cpu_ns(bool servers) const { return cpu(servers).on_cpu_ns; }

  // Sleeps about `seconds` in short steps, adding a point to the timeline every half second.
  void pause(double seconds) {
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < until) {
      sample_timeline();
      Clock::duration left = until - Clock::now();
      std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(10)));
    }
  }

  void sample_timeline() {
    double t = seconds_since(born_);
    if (!timeline_.empty() && t < timeline_.back().seconds + 0.5) return;
    int64_t cpu = cpu_ns(true);
    double busy = 0;
    if (!timeline_.empty() && t > timeline_.back().seconds)
      busy = static_cast<double>(cpu - timeline_.back().server_cpu_ns) / 1e9 / (t - timeline_.back().seconds);
    timeline_.push_back({t, server_open(), cpu, busy});
  }

  void mark(const char* label) { result_.markers.push_back({seconds_since(born_), label}); }

  bool ramp() {
    auto start = Clock::now();
    double limit = 60 + static_cast<double>(options_.conns) / 2000;
    bool tty = isatty(STDERR_FILENO);
    double next_print = 0;
    uint64_t last_done = 0;
    double last_t = 0;
    for (;;) {
      uint64_t established = sum_clients(&ClientSlot::established);
      uint64_t failed = sum_clients(&ClientSlot::failed);
      double t = seconds_since(start);
      if (t >= next_print || established + failed >= options_.conns) {
        double rate = t > last_t ? static_cast<double>(established + failed - last_done) / (t - last_t) : 0;
        std::fprintf(stderr, "%sramp [%s]: %" PRIu64 "/%" PRIu64 " established, %.0f connects/s, %" PRIu64 " failed%s",
                     tty ? "\r" : "", to_string(timers_), established, options_.conns, rate, failed,
                     tty ? "   " : "\n");
        last_done = established + failed;
        last_t = t;
        next_print = t + (tty ? 0.25 : 2);
      }
      if (established + failed >= options_.conns) break;
      if (any_child_died()) return false;
      if (t > limit) {
        result_.error = "ramp did not finish in " + std::to_string(static_cast<int>(limit)) + " s";
        return false;
      }
      pause(0.01);
    }
    if (tty) std::fprintf(stderr, "\n");
    result_.ramp_s = seconds_since(start);
    result_.failed = sum_clients(&ClientSlot::failed);
    result_.connects_per_s = static_cast<double>(options_.conns) / result_.ramp_s;
    // The server may still be accepting the last ones (a few seconds at most: a connection
    // the client counts but the server never gets — its handshake lost past a full queue —
    // must not hold the run).
    uint64_t established = sum_clients(&ClientSlot::established);
    auto settle = Clock::now();
    while (server_open() < established && seconds_since(settle) < 10) pause(0.01);
    return true;
  }

  void drive() {
    sys::KernelMemory before = sys::read_kernel_memory();
    mark("ramp");
    CpuTimes client_start = cpu(false);
    auto run_start = Clock::now();
    if (!advance(kRamp) || !ramp()) return;
    // Let the last accepted connections' samples settle before measuring memory.
    pause(0.2);
    sys::KernelMemory after = sys::read_kernel_memory();
    mark("steady");
    if (!advance(kSteady)) return;
    CpuTimes server0 = cpu(true), client0 = cpu(false);
    CoreTimes core0 = core_times(options_.server_cpu);
    auto t0 = Clock::now();
    pause(options_.duration_s);
    if (any_child_died()) return;
    CpuTimes server1 = cpu(true), client1 = cpu(false);
    CoreTimes core1 = core_times(options_.server_cpu);
    result_.steady_s = seconds_since(t0);
    mark("mute");
    if (!advance(kMute)) return;
    await_detection();
    if (!advance(kJudge)) return;
    mark("teardown");

    auto steady_ns = static_cast<int64_t>(result_.steady_s * 1e9);
    cpu_fractions(server0, server1, steady_ns, &result_.server_cpu, &result_.server_wait);
    cpu_fractions(client0, client1, steady_ns, &result_.client_cpu, &result_.client_wait);
    // Waiting is per process (averaged): W processes sharing one core wait for each other.
    result_.server_wait /= plan_.workers;
    result_.client_wait /= plan_.clients;
    double on_cpu = 0;
    cpu_fractions(client_start, cpu(false), static_cast<int64_t>(seconds_since(run_start) * 1e9), &on_cpu,
                  &result_.client_wait_run);
    result_.client_wait_run /= plan_.clients;
    result_.server_core_busy = core_busy(core0, core1);
    gather(before, after);
  }

  // Waits until every muted connection is closed, or the idle timeout plus two ticks and a
  // second of slack have passed since the mute.
  void await_detection() {
    auto start = Clock::now();
    double tick_s = static_cast<double>(tick_ms()) / 1000;
    double limit = static_cast<double>(options_.idle_ms) / 1000 + 2 * tick_s + 2;
    uint64_t muted = sum_clients(&ClientSlot::muted);
    while (seconds_since(start) < limit) {
      if (sum_clients(&ClientSlot::muted_closed) >= muted) {
        // Give late false closes a chance to show: one more ping round.
        pause(static_cast<double>(options_.ping_ms) / 1000);
        return;
      }
      if (any_child_died()) return;
      pause(0.02);
    }
  }

  int64_t tick_ms() const {
    if (options_.tick_ms > 0) return options_.tick_ms;
    return std::clamp<int64_t>(options_.ping_ms / 16, 1, 1000);
  }

  void gather(const sys::KernelMemory& before, const sys::KernelMemory& after) {
    Result& r = result_;
    long rss_growth_kib = 0;
    for (int w = 0; w < plan_.workers; ++w) {
      const WorkerSlot& slot = shared_->workers[w];
      const Sample& setup = slot.at[kSetup];
      const Sample& steady = slot.at[kSteady];
      const Sample& mute = slot.at[kMute];
      const Sample& judge = slot.at[kJudge];
      r.held += steady.open;
      r.per_worker += (w ? " " : "") + std::to_string(steady.open);
      rss_growth_kib += steady.rss_kib - setup.rss_kib;
      r.pongs += mute.pongs_received - steady.pongs_received;
      r.pings += mute.pings_sent - steady.pings_sent;
      r.rtt.merge(mute.rtt.since(steady.rtt));
      r.lateness.merge(mute.lateness.since(steady.lateness));
      r.detection.merge(judge.detection.since(mute.detection));
      r.server_idle_closes += judge.idle_closes;
    }
    r.false_closes = sum_clients(&ClientSlot::false_closes);
    describe_closes();
    r.muted = sum_clients(&ClientSlot::muted);
    r.detected = sum_clients(&ClientSlot::muted_closed);
    r.heartbeats_per_s = static_cast<double>(r.pongs) / r.steady_s;
    r.us_per_heartbeat = r.pongs ? r.server_cpu * r.steady_s * 1e6 / static_cast<double>(r.pongs) : 0;
    double held = static_cast<double>(std::max<uint64_t>(r.held, 1));
    r.user_bytes = static_cast<double>(rss_growth_kib) * 1024 / held;
    r.slab_ok = before.slab_ok && after.slab_ok;
    r.slab_bytes = (r.slab_ok ? after.slab_total - before.slab_total
                              : static_cast<double>(after.meminfo_slab_kib - before.meminfo_slab_kib) * 1024) / held;
    r.tcp_buffer_bytes = static_cast<double>(after.tcp_mem_pages - before.tcp_mem_pages) * 4096 / held;
    if (r.server_cpu > 0)
      r.extrapolated = held * (15000.0 / static_cast<double>(options_.ping_ms)) / r.server_cpu;
    for (int c = 0; c < plan_.clients; ++c)
      r.client_lag_ms = std::max(r.client_lag_ms, static_cast<double>(shared_->clients[c].max_lag_ns.load()) / 1e6);
    // Behind: busy, kept off its CPU by other load, or its loop so late that its answers could
    // have missed the server's grace.
    r.client_saturated = r.client_cpu > 0.9 || r.client_wait_run > 0.1 ||
                         r.client_lag_ms > static_cast<double>(options_.idle_ms - options_.ping_ms) / 2;
  }

  void describe_closes() {
    std::string text;
    for (int reason = 0; reason < 8; ++reason) {
      uint64_t client = 0, server = 0;
      for (int c = 0; c < plan_.clients; ++c) client += shared_->clients[c].false_by_reason[reason].load();
      for (int w = 0; w < plan_.workers; ++w) server += shared_->workers[w].at[kJudge].closes_by_reason[reason];
      if (client == 0 && server == 0) continue;
      text += std::string(text.empty() ? "" : ", ") + evwheel::to_string(static_cast<evwheel::CloseReason>(reason)) +
              " " + std::to_string(server) + " (server) " + std::to_string(client) + " (client)";
    }
    if (result_.false_closes != 0) result_.close_reasons = text;
  }

  void teardown() {
    sample_timeline();
    shared_->phase.store(kTeardown, std::memory_order_release);
    std::vector<pid_t> pids;
    for (int w = 0; w < plan_.workers; ++w) pids.push_back(shared_->workers[w].pid);
    for (int c = 0; c < plan_.clients; ++c) pids.push_back(shared_->clients[c].pid);
    auto start = Clock::now();
    for (pid_t pid : pids) {
      if (pid <= 0) continue;
      while (!exited(pid)) {
        if (seconds_since(start) > 20) {
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
          ++result_.leftover_processes;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }

  const Options& options_;
  const Plan& plan_;
  Timers timers_;
  uint16_t port_;
  int reserve_fd_;
  Shared* shared_ = nullptr;
  Result result_;
  Clock::time_point born_ = Clock::now();
  std::vector<TimelinePoint> timeline_;
};


// --- command line -------------------------------------------------------------------------

struct Choice {
  bool wheel = true, heap = false;
};

bool parse_int(const char* text, int64_t min, int64_t max, int64_t* out) {
  long value = 0;
  if (!sys::parse_integer(text, &value) || value < min || value > max) return false;
  *out = value;
  return true;
}

// Parses and checks everything; returns 0, or kUsageError after printing one line.
int parse(int argc, char** argv, Options* o, Choice* choice) {
  for (int i = 1; i < argc; ++i) {
    bool missing = false;
    const char* v = nullptr;
    int64_t n = 0;
    auto bad = [&](const char* name, const char* want) {
      return usage_error(std::string("conns: ") + name + " must be " + want + ", got '" + (v ? v : "") + "'");
    };
    if ((v = sys::option("--conns", argc, argv, &i, &missing))) {
      if (!parse_count(v, 1, 100'000'000, &o->conns)) return bad("--conns", "a count in 1 ..= 1e8");
    } else if ((v = sys::option("--ping-interval-ms", argc, argv, &i, &missing))) {
      if (!parse_int(v, 1, 86'400'000, &o->ping_ms)) return bad("--ping-interval-ms", "a whole number of ms > 0");
    } else if ((v = sys::option("--idle-timeout-ms", argc, argv, &i, &missing))) {
      if (!parse_int(v, 1, 86'400'000, &o->idle_ms)) return bad("--idle-timeout-ms", "a whole number of ms > 0");
    } else if ((v = sys::option("--tick-ms", argc, argv, &i, &missing))) {
      if (!parse_int(v, 0, 86'400'000, &o->tick_ms)) return bad("--tick-ms", "a whole number of ms >= 0");
    } else if ((v = sys::option("--duration", argc, argv, &i, &missing))) {
      if (!sys::parse_real(v, &o->duration_s) || o->duration_s <= 0 || o->duration_s > 86400)
        return bad("--duration", "seconds > 0");
    } else if ((v = sys::option("--mute-fraction", argc, argv, &i, &missing))) {
      if (!sys::parse_real(v, &o->mute_fraction) || o->mute_fraction < 0 || o->mute_fraction > 1)
        return bad("--mute-fraction", "a number in 0 ..= 1");
    } else if ((v = sys::option("--codec", argc, argv, &i, &missing))) {
      if (std::strcmp(v, "seed") != 0 && std::strcmp(v, "framed") != 0) return bad("--codec", "framed or seed");
      o->seed = std::strcmp(v, "seed") == 0;
    } else if ((v = sys::option("--timers", argc, argv, &i, &missing))) {
      std::string t = v;
      if (t != "wheel" && t != "heap" && t != "both") return bad("--timers", "wheel, heap or both");
      choice->wheel = t != "heap";
      choice->heap = t != "wheel";
    } else if ((v = sys::option("--server-cpu", argc, argv, &i, &missing))) {
      if (!parse_int(v, 0, CPU_SETSIZE - 1, &n) || !sys::cpu_allowed(static_cast<long>(n)))
        return bad("--server-cpu", ("one of the CPUs " + sys::allowed_cpu_list()).c_str());
      o->server_cpu = static_cast<int>(n);
    } else if ((v = sys::option("--client-cpu", argc, argv, &i, &missing))) {
      if (!parse_int(v, 0, CPU_SETSIZE - 1, &n) || !sys::cpu_allowed(static_cast<long>(n)))
        return bad("--client-cpu", ("one of the CPUs " + sys::allowed_cpu_list()).c_str());
      o->client_cpu = static_cast<int>(n);
    } else if ((v = sys::option("--port", argc, argv, &i, &missing))) {
      if (!parse_int(v, 0, 65535, &n)) return bad("--port", "a port number (0: a free one)");
      o->port = static_cast<uint16_t>(n);
    } else if ((v = sys::option("--reactors", argc, argv, &i, &missing))) {
      if (!parse_int(v, 1, 64, &n)) return bad("--reactors", "a number of reactors in 1 ..= 64");
      o->reactors = static_cast<int>(n);
    } else if ((v = sys::option("--json", argc, argv, &i, &missing))) {
      o->json = v;
    } else if ((v = sys::option("--svg", argc, argv, &i, &missing))) {
      o->svg = v;
    } else if ((v = sys::option("--floor-seconds", argc, argv, &i, &missing))) {
      if (!sys::parse_real(v, &o->floor_seconds) || o->floor_seconds < 0 || o->floor_seconds > 600)
        return bad("--floor-seconds", "seconds >= 0 (0: no floor measurement)");
    } else if (missing) {
      return usage_error(std::string("conns: ") + argv[i] + " needs a value");
    } else {
      return usage_error(std::string("conns: unknown option '") + argv[i] + "' (try evwheel-bench --help)");
    }
  }
  if (o->idle_ms <= o->ping_ms)
    return usage_error("conns: --idle-timeout-ms (" + std::to_string(o->idle_ms) +
                       ") must be longer than --ping-interval-ms (" + std::to_string(o->ping_ms) + ")");
  if (o->tick_ms > o->ping_ms) return usage_error("conns: --tick-ms must not exceed --ping-interval-ms");
  if (o->reactors > 1 && choice->heap)
    return usage_error("conns: --reactors applies to the wheel server only (use --timers wheel)");
  return 0;
}

// Connections one process may hold: its descriptor limit (raised to the hard limit) minus
// what it keeps for itself; a client also needs a local port per connection from its one
// source address.
int make_plan(const Options& o, Plan* plan) {
  long limit = sys::raise_nofile();
  if (limit <= kReservedDescriptors * 2)
    return usage_error("conns: the descriptor limit (" + std::to_string(limit) + ") is too low");
  plan->descriptor_limit = limit;
  plan->per_process = static_cast<uint64_t>(limit - kReservedDescriptors);
  // The kernel finds a free local port by probing the range: past about a third used, each
  // connect() probes long (and ports of earlier runs may sit in TIME_WAIT), so a client uses
  // another source address for every third of the range.
  plan->ports_per_source = std::max<uint64_t>(ephemeral_ports() / 3, 1000);
  uint64_t processes = (o.conns + plan->per_process - 1) / plan->per_process;
  if (processes > static_cast<uint64_t>(kMaxProcesses))
    return usage_error("conns: " + std::to_string(o.conns) + " connections need " + std::to_string(processes) +
                       " processes per side, more than " + std::to_string(kMaxProcesses));
  plan->workers = plan->clients = static_cast<int>(processes);
  // The steering program counts listeners in the order they listen; a worker's R reactors
  // listen in an order of their own, so R > 1 keeps to one worker (and its descriptor limit).
  if (o.reactors > 1 && plan->workers > 1)
    return usage_error("conns: --reactors " + std::to_string(o.reactors) + " needs --conns <= " +
                       std::to_string(plan->per_process) + " (one server process)");
  return 0;
}

// Loopback sockets that have carried traffic keep about half a page each charged to TCP
// (measured: 807,794 pages for 1.65M sockets); past net.ipv4.tcp_mem's third value new
// connections fail.  Returns a warning when N connections (2N sockets) may not fit.
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

// Holds the port for the whole run: a bound (not listening) SO_REUSEPORT socket, so nobody
// else can take it between runs and the workers can join it.  A port someone else uses is a
// usage error.
int reserve_port(uint16_t wanted, int* fd, uint16_t* port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(wanted);
  if (wanted != 0) {
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address);
    int error = errno;
    ::close(probe);
    if (rc != 0) return usage_error("conns: port " + std::to_string(wanted) + " is busy (" + std::strerror(error) + ")");
  }
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  socklen_t length = sizeof address;
  if (bind(*fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(*fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return usage_error(std::string("conns: cannot bind 127.0.0.1: ") + std::strerror(errno));
  *port = ntohs(address.sin_port);
  return 0;
}

// --- report -------------------------------------------------------------------------------

double ms(evwheel::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Row {
  std::string label;
  std::string (*value)(const Result&, const Options&);
};

std::string format(const char* spec, double a) {
  char text[64];
  std::snprintf(text, sizeof text, spec, a);
  return text;
}
std::string format3(const char* spec, double a, double b, double c) {
  char text[96];
  std::snprintf(text, sizeof text, spec, a, b, c);
  return text;
}
std::string count(uint64_t n) { return std::to_string(n); }

const Row kRows[] = {
    {"server / client processes", [](const Result& r, const Options&) { return std::to_string(r.workers) + " / " + std::to_string(r.clients); }},
    {"connections held", [](const Result& r, const Options& o) { return count(r.held) + " of " + count(o.conns); }},
    {"connect failures", [](const Result& r, const Options&) { return count(r.failed); }},
    {"ramp (s, connects/s)", [](const Result& r, const Options&) { return format("%.1f", r.ramp_s) + ", " + format("%.0f", r.connects_per_s); }},
    {"FALSE CLOSES", [](const Result& r, const Options&) { return count(r.false_closes); }},
    {"muted / detected", [](const Result& r, const Options&) { return count(r.muted) + " / " + count(r.detected); }},
    {"detection ms p50/p99/max", [](const Result& r, const Options&) { return format3("%.0f / %.0f / %.0f", ms(r.detection.percentile(0.5)), ms(r.detection.percentile(0.99)), ms(r.detection.max())); }},
    {"server CPU % of a core", [](const Result& r, const Options&) { return format("%.1f", 100 * r.server_cpu) + format(" (core busy %.1f)", 100 * r.server_core_busy); }},
    {"client CPU % of a core", [](const Result& r, const Options&) { return format("%.1f", 100 * r.client_cpu) + (r.client_saturated ? " BEHIND" : ""); }},
    {"waiting for CPU % srv/cli", [](const Result& r, const Options&) { return format("%.1f", 100 * r.server_wait) + format(" / %.1f", 100 * r.client_wait); }},
    {"client loop lag max ms", [](const Result& r, const Options&) { return format("%.0f", r.client_lag_ms); }},
    {"heartbeats/s", [](const Result& r, const Options&) { return format("%.0f", r.heartbeats_per_s); }},
    {"server us per heartbeat", [](const Result& r, const Options&) { return format("%.2f", r.us_per_heartbeat); }},
    {"  x kernel floor", [](const Result& r, const Options&) { return r.floor_us > 0 ? format("%.2f", r.us_per_heartbeat / r.floor_us) + format(" (floor %.2f us)", r.floor_us) : std::string("not measured"); }},
    {"ping RTT us p50/p99/p999", [](const Result& r, const Options&) { return format3("%.0f / %.0f / %.0f", ms(r.rtt.percentile(0.5)) * 1000, ms(r.rtt.percentile(0.99)) * 1000, ms(r.rtt.percentile(0.999)) * 1000); }},
    {"ping lateness ms p50/p99/max", [](const Result& r, const Options&) { return format3("%.1f / %.1f / %.1f", ms(r.lateness.percentile(0.5)), ms(r.lateness.percentile(0.99)), ms(r.lateness.max())); }},
    {"user bytes/conn (RSS/N)", [](const Result& r, const Options&) { return format("%.0f", r.user_bytes); }},
    {"kernel bytes/conn (slab)", [](const Result& r, const Options&) { return format("%.0f", r.slab_bytes) + (r.slab_ok ? "" : " (meminfo)"); }},
    {"conns/core @15 s (extrap.)", [](const Result& r, const Options&) { return format("%.3g", r.extrapolated); }},
};

void print_table(const std::vector<Result>& results, const Options& o) {
  std::printf("\nconns: N=%" PRIu64 " P=%" PRId64 " ms I=%" PRId64 " ms tick=%" PRId64 " ms, %.0f s steady, %.0f%% muted, codec %s, server cpu %d, client cpu %d, %d reactor(s) per server process\n",
              o.conns, o.ping_ms, o.idle_ms, o.tick_ms ? o.tick_ms : std::clamp<int64_t>(o.ping_ms / 16, 1, 1000),
              o.duration_s, 100 * o.mute_fraction, o.seed ? "seed" : "framed", o.server_cpu, o.client_cpu, o.reactors);
  std::printf("%-30s", "timers");
  for (const Result& r : results) std::printf(" %28s", to_string(r.timers));
  std::printf("\n");
  for (const Row& row : kRows) {
    std::printf("%-30s", row.label.c_str());
    for (const Result& r : results) std::printf(" %28s", r.error.empty() ? row.value(r, o).c_str() : "-");
    std::printf("\n");
  }
  for (const Result& r : results) {
    if (r.workers > 1) std::printf("%s: held per server worker: %s\n", to_string(r.timers), r.per_worker.c_str());
    if (!r.close_reasons.empty()) std::printf("%s: closes by reason: %s\n", to_string(r.timers), r.close_reasons.c_str());
    if (!r.error.empty()) std::printf("%s: FAILED: %s\n", to_string(r.timers), r.error.c_str());
    if (r.client_saturated)
      std::printf("%s: the load generator fell behind (client CPU %.0f%% of its core, waiting for a CPU %.0f%% of"
                  " the run, its loop up to %.0f ms late): its own delay is in the RTTs, and closes it caused are"
                  " not the server's\n",
                  to_string(r.timers), 100 * r.client_cpu, 100 * r.client_wait_run, r.client_lag_ms);
    if (r.server_wait > 0.05)
      std::printf("%s: a server process waited for its CPU %.0f%% of the steady state: other load (or its"
                  " sibling workers) shared the core\n", to_string(r.timers), 100 * r.server_wait);
    if (r.leftover_processes) std::printf("%s: %d processes had to be killed at teardown\n", to_string(r.timers), r.leftover_processes);
  }
  std::printf("(extrap.: N * (15000 / P) / server CPU fraction — an extrapolation, not a measurement)\n");
}

std::string svg_path(const std::string& path, Timers timers, bool several) {
  if (!several || timers == Timers::wheel) return path;
  std::size_t dot = path.rfind(".svg");
  std::string stem = dot == std::string::npos ? path : path.substr(0, dot);
  return stem + "-heap.svg";
}

bool write_timeline(const std::string& path, const Result& r, const Options& o, std::string* error) {
  SvgSeries held{"connections held", "", {}};
  SvgSeries cpu{"server CPU", "% of a core", {}};
  for (const TimelinePoint& p : r.timeline) {
    held.points.emplace_back(p.seconds, static_cast<double>(p.held));
    if (&p != &r.timeline.front()) cpu.points.emplace_back(p.seconds, 100 * p.server_cpu);
  }
  char title[200];
  std::snprintf(title, sizeof title, "evwheel-bench conns (%s timers): N=%" PRIu64 ", P=%" PRId64 " ms, I=%" PRId64 " ms, %.0f%% muted",
                to_string(r.timers), o.conns, o.ping_ms, o.idle_ms, 100 * o.mute_fraction);
  return write_svg(path, title, held, cpu, r.markers, error);
}

// The same figures as the table, as one JSON object ({"options", "plan", "runs": [...]}).
std::string json_histogram(const evwheel::Histogram& h) {
  char text[200];
  std::snprintf(text, sizeof text, "{\"count\": %" PRIu64 ", \"p50_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f, \"max_us\": %.0f}",
                h.count(), ms(h.percentile(0.5)) * 1000, ms(h.percentile(0.99)) * 1000,
                ms(h.percentile(0.999)) * 1000, ms(h.max()) * 1000);
  return text;
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

bool write_json(const std::string& path, const std::vector<Result>& results, const Options& o, const Plan& plan) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  std::fprintf(f, "{\n  \"command\": %s,\n", json_string(command_line()).c_str());
  std::fprintf(f, "  \"options\": {\"conns\": %" PRIu64 ", \"ping_interval_ms\": %" PRId64 ", \"idle_timeout_ms\": %" PRId64
               ", \"tick_ms\": %" PRId64 ", \"duration_s\": %g, \"mute_fraction\": %g, \"codec\": \"%s\", \"server_cpu\": %d, \"client_cpu\": %d, \"reactors\": %d},\n",
               o.conns, o.ping_ms, o.idle_ms, o.tick_ms, o.duration_s, o.mute_fraction, o.seed ? "seed" : "framed",
               o.server_cpu, o.client_cpu, o.reactors);
  std::fprintf(f, "  \"plan\": {\"descriptor_limit\": %ld, \"per_process\": %" PRIu64 ", \"server_processes\": %d, \"client_processes\": %d},\n",
               plan.descriptor_limit, plan.per_process, plan.workers, plan.clients);
  std::fprintf(f, "  \"runs\": [\n");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::fprintf(f, "    {\"timers\": \"%s\", \"error\": %s, \"held\": %" PRIu64 ", \"connect_failures\": %" PRIu64
                 ", \"false_closes\": %" PRIu64 ", \"muted\": %" PRIu64 ", \"detected\": %" PRIu64 ",\n",
                 to_string(r.timers), json_string(r.error).c_str(), r.held, r.failed, r.false_closes, r.muted, r.detected);
    std::fprintf(f, "     \"ramp_s\": %.3f, \"steady_s\": %.3f, \"server_cpu\": %.4f, \"server_core_busy\": %.4f, \"client_cpu\": %.4f, \"client_saturated\": %s,\n",
                 r.ramp_s, r.steady_s, r.server_cpu, r.server_core_busy, r.client_cpu, r.client_saturated ? "true" : "false");
    std::fprintf(f, "     \"heartbeats_per_s\": %.1f, \"us_per_heartbeat\": %.3f, \"floor_us_per_message\": %.3f, \"user_bytes_per_conn\": %.1f, \"kernel_slab_bytes_per_conn\": %.1f, \"extrapolated_conns_per_core_15s\": %.0f,\n",
                 r.heartbeats_per_s, r.us_per_heartbeat, r.floor_us, r.user_bytes, r.slab_bytes, r.extrapolated);
    std::fprintf(f, "     \"rtt\": %s,\n     \"lateness\": %s,\n     \"detection\": %s, \"leftover_processes\": %d}%s\n",
                 json_histogram(r.rtt).c_str(), json_histogram(r.lateness).c_str(), json_histogram(r.detection).c_str(),
                 r.leftover_processes, i + 1 < results.size() ? "," : "");
  }
  std::fprintf(f, "  ]\n}\n");
  return std::fclose(f) == 0;
}

}  // namespace
}  // namespace conns

int run_conns(int argc, char** argv) {
  conns::Options options;
  conns::Choice choice;
  if (int rc = conns::parse(argc, argv, &options, &choice)) return rc;
  conns::Plan plan;
  if (int rc = conns::make_plan(options, &plan)) return rc;
  int reserve = -1;
  uint16_t port = 0;
  if (int rc = conns::reserve_port(options.port, &reserve, &port)) return rc;

  print_header();
  std::printf("plan: descriptor limit %ld, up to %" PRIu64 " connections per process: %d server worker(s) on cpu %d, %d client process(es) on cpu %d, port %u\n",
              plan.descriptor_limit, plan.per_process, plan.workers, options.server_cpu, plan.clients,
              options.client_cpu, port);
  FloorResult floor;
  if (options.floor_seconds > 0) {
    // As many pairs as the run has connections, where the descriptor limit allows: the
    // kernel's cost per message grows with the sockets it has to touch.
    int pairs = static_cast<int>(std::min<uint64_t>(options.conns, static_cast<uint64_t>(floor_pair_limit())));
    floor = measure_floor(pairs, options.floor_seconds, options.server_cpu);
    std::printf("floor: %.2f us of CPU per 4-byte message (send + batched epoll_wait + recv, %d pairs on cpu %d; unbatched %.2f us)\n",
                floor.us_per_message, floor.pairs, options.server_cpu, floor.unbatched_us_per_message);
  }
  std::string warning = conns::tcp_memory_warning(options.conns);
  if (!warning.empty()) std::printf("%s\n", warning.c_str());
  std::vector<conns::Result> results;
  if (choice.wheel) results.push_back(conns::Run(options, plan, conns::Timers::wheel, port, reserve).go());
  if (choice.heap) results.push_back(conns::Run(options, plan, conns::Timers::heap, port, reserve).go());
  close(reserve);
  for (conns::Result& r : results) r.floor_us = floor.us_per_message;
  conns::print_table(results, options);
  if (!options.svg.empty()) {
    for (const conns::Result& r : results) {
      std::string path = conns::svg_path(options.svg, r.timers, results.size() > 1);
      std::string error;
      if (!conns::write_timeline(path, r, options, &error)) {
        std::fprintf(stderr, "evwheel-bench: conns: %s\n", error.c_str());
        return 1;
      }
      std::printf("%s: timeline written to %s\n", conns::to_string(r.timers), path.c_str());
    }
  }
  if (!options.json.empty() && !conns::write_json(options.json, results, options, plan)) {
    std::fprintf(stderr, "evwheel-bench: conns: cannot write %s: %s\n", options.json.c_str(), std::strerror(errno));
    return 1;
  }
  bool ok = true;
  for (const conns::Result& r : results) ok &= r.error.empty() && r.leftover_processes == 0;
  return ok ? 0 : 1;
}

}  // namespace bench
