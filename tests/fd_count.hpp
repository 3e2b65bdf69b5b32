// open_fd_count(): descriptors this process has open (entries of /proc/self/fd, minus the one listing it).
#pragma once

#include <dirent.h>

#include <cstddef>
#include <cstdlib>

inline std::size_t open_fd_count() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return 0;
  std::size_t count = 0;
  while (dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != dirfd(dir)) ++count;
  closedir(dir);
  return count;
}
