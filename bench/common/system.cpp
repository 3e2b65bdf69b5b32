// system — see system.hpp.
#include "system.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bench {
namespace sys {

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t timeval_ns(const timeval& tv) { return int64_t{tv.tv_sec} * 1'000'000'000 + int64_t{tv.tv_usec} * 1000; }

int64_t process_cpu_ns() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime);
}

long raise_nofile(long* hard) {
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

bool allowed_cpus(cpu_set_t* set) {
  CPU_ZERO(set);
  return sched_getaffinity(0, sizeof *set, set) == 0;
}

bool cpu_allowed(long cpu) {
  cpu_set_t set;
  if (cpu < 0 || cpu >= CPU_SETSIZE || !allowed_cpus(&set)) return false;
  return CPU_ISSET(static_cast<int>(cpu), &set);
}

std::string allowed_cpu_list() {
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

int nth_allowed_cpu(int n) {
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

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

long status_kib(const char* field, const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  std::size_t length = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, length, field) == 0 && line.size() > length && line[length] == ':')
      return std::strtol(line.c_str() + length + 1, nullptr, 10);
  }
  return -1;
}

CpuTimes cpu_times(const std::string& pid) {
  const std::string proc = "/proc/" + pid;
  CpuTimes times{0, 0};
  // /proc/<pid>/schedstat is the main thread's alone: sum every thread's.
  if (DIR* tasks = opendir((proc + "/task").c_str())) {
    bool any = false;
    while (dirent* task = readdir(tasks)) {
      if (task->d_name[0] == '.') continue;
      std::ifstream schedstat(proc + "/task/" + task->d_name + "/schedstat");
      int64_t on_cpu = 0, waiting = 0;
      if (!(schedstat >> on_cpu >> waiting)) continue;
      times.on_cpu_ns += on_cpu;
      times.waiting_ns += waiting;
      any = true;
    }
    closedir(tasks);
    if (any) return times;
  }
  times = CpuTimes{};
  std::ifstream stat(proc + "/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command name, which is in parentheses and may hold spaces: state is
  // field 3, utime and stime are fields 14 and 15.
  std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return times;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  int64_t ticks = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number)
    if (number == 14 || number == 15) ticks += std::stoll(field);
  times.on_cpu_ns = ticks * 1'000'000'000 / sysconf(_SC_CLK_TCK);
  return times;
}

CpuTimes thread_cpu_times() {
  std::ifstream schedstat("/proc/thread-self/schedstat");
  int64_t on_cpu = 0, waiting = 0;
  if (schedstat >> on_cpu >> waiting) return CpuTimes{on_cpu, waiting};
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return CpuTimes{int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec, -1};
}

void cpu_fractions(const CpuTimes& from, const CpuTimes& to, int64_t window_ns, double* on_cpu, double* waiting) {
  const auto window = static_cast<double>(window_ns);
  *on_cpu = static_cast<double>(to.on_cpu_ns - from.on_cpu_ns) / window;
  *waiting = from.waiting_ns < 0 ? -1 : static_cast<double>(to.waiting_ns - from.waiting_ns) / window;
}

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

double core_busy(const CoreTimes& from, const CoreTimes& to) {
  return to.total > from.total
             ? static_cast<double>(to.busy - from.busy) / static_cast<double>(to.total - from.total)
             : 0;
}

KernelMemory read_kernel_memory() {
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

}  // namespace sys
}  // namespace bench
