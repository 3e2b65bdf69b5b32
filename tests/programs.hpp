// programs — the external programs some tests drive (haproxy, openssl): finding them where
// Debian installs them, and starting them with chosen descriptors as their stdin/stdout/stderr
// and inherited sockets.  A test that finds no binary says so and skips.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace programs {

// `name` on PATH, else in the sbin directories (not on every user's PATH); "" if none.
inline std::string find(const std::string& name) {
  std::vector<std::string> candidates;
  std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "");
  for (std::string dir; std::getline(path, dir, ':');)
    if (!dir.empty()) candidates.push_back(dir + "/" + name);
  for (const char* dir : {"/usr/sbin/", "/usr/local/sbin/", "/usr/bin/"}) candidates.push_back(dir + name);
  for (const std::string& candidate : candidates)
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  return "";
}

inline std::string read_file(const std::string& name) {
  std::ifstream in(name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Where a started program's descriptors come from: `in`/`out` are descriptors of ours (-1:
// /dev/null for stdin, `log` for stdout), stderr always goes to `log` (appended), and each
// `inherited[i]` becomes descriptor `at[i]` (dup2 to a new number clears FD_CLOEXEC, so only
// these survive the exec).
struct Plumbing {
  int in = -1;
  int out = -1;
  std::string log = "/dev/null";
  std::vector<int> inherited, at;
};

// Starts `args` (args[0] is the binary's path); the pid, or -1.
inline pid_t spawn(std::vector<std::string> args, const Plumbing& plumbing) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (plumbing.in >= 0)
    posix_spawn_file_actions_adddup2(&actions, plumbing.in, 0);
  else
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, plumbing.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, plumbing.out >= 0 ? plumbing.out : 2, 1);
  for (std::size_t i = 0; i < plumbing.inherited.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, plumbing.inherited[i], plumbing.at[i]);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

// Starts `haproxy -f config -db` (in the foreground) with `inherited` sockets at the numbers
// `at` (for `bind fd@N` lines) and its output in `log`; the pid, or -1.
inline pid_t spawn_haproxy(const std::string& binary, const std::string& config, const std::string& log,
                           const std::vector<int>& inherited, const std::vector<int>& at) {
  Plumbing plumbing;
  plumbing.log = log;
  plumbing.inherited = inherited;
  plumbing.at = at;
  return spawn({binary, "-f", config, "-db"}, plumbing);
}

}  // namespace programs
