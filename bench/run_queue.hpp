// run_queue — how much CPU a process got, and how long it waited for one: the figure that says
// whether a benchmark shared its CPUs with other load (then its wall-clock results are noisy).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {

// A process's CPU time so far (all its threads): on a CPU, and waiting on a run queue for one (the machine was
// busy).  From /proc/<pid>/schedstat in nanoseconds; where the kernel keeps no schedstat,
// on-CPU time comes from /proc/<pid>/stat's utime + stime ticks and waiting is unknown (-1).
struct CpuTimes {
  int64_t on_cpu_ns = -1;
  int64_t waiting_ns = -1;
};

inline CpuTimes cpu_times(const std::string& pid) {
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

// Fractions of `window_ns` that `to` - `from` spent on a CPU and waiting (-1: unknown).
inline void cpu_fractions(const CpuTimes& from, const CpuTimes& to, int64_t window_ns, double* on_cpu,
                   double* waiting) {
  const auto window = static_cast<double>(window_ns);
  *on_cpu = static_cast<double>(to.on_cpu_ns - from.on_cpu_ns) / window;
  *waiting = from.waiting_ns < 0 ? -1 : static_cast<double>(to.waiting_ns - from.waiting_ns) / window;
}

}  // namespace bench
