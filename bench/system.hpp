// system — what the end-to-end bench modes (floor, conns) read from and ask of the kernel:
// descriptor limits, CPU sets and pinning, CPU time, VmRSS, kernel memory (/proc/slabinfo,
// /proc/net/sockstat, /proc/meminfo), and their "--name value" option parsing.
#pragma once

#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace bench {
namespace sys {

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t timeval_ns(const timeval& tv) {
  return int64_t{tv.tv_sec} * 1'000'000'000 + int64_t{tv.tv_usec} * 1000;
}

// User + system CPU time of this process (getrusage), in nanoseconds.
inline int64_t process_cpu_ns() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime);
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force (soft), or
// -1.  `hard` receives the hard limit.
inline long raise_nofile(long* hard = nullptr) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (hard) *hard = limit.rlim_max == RLIM_INFINITY ? 1L << 20 : static_cast<long>(limit.rlim_max);
  return limit.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(limit.rlim_cur);
}

// The CPUs this process may run on (what nproc counts).
inline bool allowed_cpus(cpu_set_t* set) {
  CPU_ZERO(set);
  return sched_getaffinity(0, sizeof *set, set) == 0;
}

inline bool cpu_allowed(long cpu) {
  cpu_set_t set;
  if (cpu < 0 || cpu >= CPU_SETSIZE || !allowed_cpus(&set)) return false;
  return CPU_ISSET(static_cast<int>(cpu), &set);
}

// "0-1" or "0,2,5": the allowed CPU list, for error messages.
inline std::string allowed_cpu_list() {
  cpu_set_t set;
  if (!allowed_cpus(&set)) return "unknown";
  std::string out;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
    if (last > cpu) out += "-" + std::to_string(last);
    cpu = last;
  }
  return out;
}

// The n-th allowed CPU (0-based), or the last one when there are fewer; -1 on error.
inline int nth_allowed_cpu(int n) {
  cpu_set_t set;
  if (!allowed_cpus(&set)) return -1;
  int found = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    found = cpu;
    if (n-- == 0) break;
  }
  return found;
}

inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// A "Name:   value kB" field of /proc/<pid>/status ("self" for this process), in KiB; -1 when
// it cannot be read.
inline long status_kib(const char* field, const std::string& pid = "self") {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  std::size_t length = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, length, field) == 0 && line.size() > length && line[length] == ':')
      return std::strtol(line.c_str() + length + 1, nullptr, 10);
  }
  return -1;
}

// Kernel memory that grows with connections.  Each source may be missing (its flag false).
struct KernelMemory {
  bool slab_ok = false;         // /proc/slabinfo was readable (root on most systems)
  std::map<std::string, double> slab_bytes;  // per cache: active_objs * objsize
  double slab_total = 0;
  bool sockstat_ok = false;     // /proc/net/sockstat "TCP: ... mem <pages>"
  long tcp_mem_pages = 0;       // socket buffer memory charged to TCP, in pages
  long tcp_inuse = 0;
  long meminfo_slab_kib = -1;   // /proc/meminfo Slab:, the fallback without slabinfo
};

inline KernelMemory read_kernel_memory() {
  KernelMemory memory;
  {
    std::ifstream in("/proc/slabinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#' || line.compare(0, 8, "slabinfo") == 0) continue;
      std::istringstream fields(line);
      std::string name;
      double active = 0, total = 0, size = 0;
      if (!(fields >> name >> active >> total >> size)) continue;
      memory.slab_ok = true;
      memory.slab_bytes[name] = active * size;
      memory.slab_total += active * size;
    }
  }
  {
    std::ifstream in("/proc/net/sockstat");
    std::string line;
    while (std::getline(in, line)) {
      if (line.compare(0, 4, "TCP:") != 0) continue;
      std::istringstream fields(line.substr(4));
      std::string key;
      long value;
      while (fields >> key >> value) {
        if (key == "mem") memory.tcp_mem_pages = value, memory.sockstat_ok = true;
        if (key == "inuse") memory.tcp_inuse = value;
      }
    }
  }
  {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line))
      if (line.compare(0, 5, "Slab:") == 0) memory.meminfo_slab_kib = std::strtol(line.c_str() + 5, nullptr, 10);
  }
  return memory;
}

// Option parsing shared by floor and conns: "--name value" or "--name=value".  Returns the
// value when argv[*i] is option `name` (advancing *i past a separate value); nullptr
// otherwise, with *missing set when the option is there but its value is not.
inline const char* option(const char* name, int argc, char** argv, int* i, bool* missing) {
  std::size_t length = std::strlen(name);
  const char* arg = argv[*i];
  if (std::strncmp(arg, name, length) != 0) return nullptr;
  if (arg[length] == '=') return arg + length + 1;
  if (arg[length] != '\0') return nullptr;
  if (*i + 1 >= argc) {
    *missing = true;
    return nullptr;
  }
  return argv[++*i];
}

// A decimal number (e.g. "0.1", "10", "2.5"): false unless all of `text` is one, finite.
inline bool parse_real(const char* text, double* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  double value = std::strtod(text, &end);
  if (*end != '\0' || !(value == value) || value > 1e18 || value < -1e18) return false;
  *out = value;
  return true;
}

// A whole number, possibly negative (CPU indices are checked by the caller).
inline bool parse_integer(const char* text, long* out) {
  if (*text == '\0') return false;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (*end != '\0') return false;
  *out = value;
  return true;
}

}  // namespace sys
}  // namespace bench
