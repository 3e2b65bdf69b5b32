// system — what the end-to-end bench modes read from and ask of the kernel: the clock,
// descriptor limits, CPU sets and pinning, CPU time and run-queue waiting of a process and of
// a whole core, VmRSS-style status fields, and kernel memory (/proc/slabinfo, sockstat,
// meminfo).
//
// Every reader is best effort: a source the kernel does not offer (or this user may not
// read) gives a value that says so (-1, or a false *_ok flag), never a made-up figure.
#pragma once

#include <sched.h>
#include <sys/time.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace bench {
namespace sys {

int64_t monotonic_ns();
// Seconds from `start` to now, on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);
int64_t timeval_ns(const timeval& tv);

// User + system CPU time of this process (getrusage), in nanoseconds.
int64_t process_cpu_ns();

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force (soft), or
// -1.  `hard` receives the hard limit.
long raise_nofile(long* hard = nullptr);

// The CPUs this process may run on (what nproc counts).
bool allowed_cpus(cpu_set_t* set);
bool cpu_allowed(long cpu);
// "0-1" or "0,2,5": the allowed CPU list, for error messages.
std::string allowed_cpu_list();
// The n-th allowed CPU (0-based), or the last one when there are fewer; -1 on error.
int nth_allowed_cpu(int n);
bool pin_to_cpu(int cpu);

// A "Name:   value kB" field of /proc/<pid>/status ("self" for this process), in KiB; -1 when
// it cannot be read.
long status_kib(const char* field, const std::string& pid = "self");

// A process's CPU time so far (all its threads): on a CPU, and waiting on a run queue for one
// (the machine was busy).  From /proc/<pid>/task/*/schedstat in nanoseconds; where the kernel
// keeps no schedstat, on-CPU time comes from /proc/<pid>/stat's ticks and waiting is -1.
struct CpuTimes {
  int64_t on_cpu_ns = -1;
  int64_t waiting_ns = -1;
};
CpuTimes cpu_times(const std::string& pid);
// The calling thread's alone (/proc/thread-self/schedstat; without it, on-CPU time from
// CLOCK_THREAD_CPUTIME_ID and waiting -1).
CpuTimes thread_cpu_times();
// Fractions of `window_ns` that `to` - `from` spent on a CPU and waiting (-1: unknown).
void cpu_fractions(const CpuTimes& from, const CpuTimes& to, int64_t window_ns, double* on_cpu, double* waiting);

// Busy and total jiffies of one CPU from /proc/stat (busy includes irq and softirq time,
// which the kernel may not charge to any process).
struct CoreTimes {
  uint64_t busy = 0, total = 0;
};
CoreTimes core_times(int cpu);
double core_busy(const CoreTimes& from, const CoreTimes& to);  // fraction of the interval

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
KernelMemory read_kernel_memory();

}  // namespace sys
}  // namespace bench
