// fd_count — how many descriptors this process has open (the entries of /proc/self/fd, less
// the one listing it), for the tests' "every descriptor given back" checks.  A count that cannot
// be taken is never reported as 0: two zeros would compare equal and hide a leak.
#pragma once

#include <dirent.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

// The count, or nothing when /proc/self/fd cannot be read (no /proc, or no descriptor left to
// open it with — a test's child process that ran out on purpose).
inline std::optional<std::size_t> try_open_fd_count() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return std::nullopt;
  std::size_t count = 0;
  while (dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != dirfd(dir)) ++count;
  closedir(dir);
  return count;
}

// The count; throws when it cannot be taken, which fails the test that asked.
inline std::size_t open_fd_count() {
  if (std::optional<std::size_t> count = try_open_fd_count()) return *count;
  throw std::runtime_error(std::string("cannot count open descriptors: /proc/self/fd: ") + std::strerror(errno));
}
