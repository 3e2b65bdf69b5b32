// command_pipe — a forked child process driven over two pipes: one-byte commands in, fixed-size
// messages out.  Used wherever a bench mode or a test needs a server (or clients) in a process
// of its own, to stop it, starve it of descriptors or count its memory from outside.
//
//   parent: ChildProcess<Message> forks, sends commands, reads messages with a timeout, and
//           kills and reaps the child whatever happens (a failed check leaves no process);
//   child:  CommandReader reads the commands on the child's reactor: 'q' or end-of-file stops
//           the loop, 'r' conventionally asks for a report, any other byte is the child's own.
//
// Invariant: a message is a trivially copyable struct smaller than PIPE_BUF, so each write
// arrives whole and each read returns one message or nothing.  The child keeps only 0, 1, 2
// and its two pipe ends (as 3 and 4), so its descriptor count is its own, and never returns
// into the parent's code: it ends with _exit.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "evwheel/reactor.hpp"

namespace command_pipe {

template <class Message>
void send(int fd, const Message& message) {
  static_assert(std::is_trivially_copyable<Message>::value && sizeof(Message) < PIPE_BUF,
                "a message is one atomic pipe write");
  [[maybe_unused]] auto n = ::write(fd, &message, sizeof message);
}

// One message from `fd` within `timeout`; false on timeout, end-of-file or a short read.
template <class Message>
bool receive(int fd, Message& message, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  return ::read(fd, &message, sizeof message) == static_cast<ssize_t>(sizeof message);
}

// The child's end of the command pipe, read on its reactor.
class CommandReader final : public evwheel::IoHandler {
 public:
  CommandReader(evwheel::Reactor& reactor, int in, std::function<void(char command)> on_command)
      : reactor_(reactor), in_(in), on_command_(std::move(on_command)) {
    reactor_.add(in_, EPOLLIN, *this);
  }
  ~CommandReader() {
    if (in_ >= 0) reactor_.remove(in_);
  }
  CommandReader(const CommandReader&) = delete;
  CommandReader& operator=(const CommandReader&) = delete;

  void on_io(uint32_t) override {
    char command = 'q';
    if (::read(in_, &command, 1) != 1) command = 'q';
    if (command != 'q') return on_command_(command);
    reactor_.remove(in_);
    in_ = -1;
    reactor_.stop();
  }

 private:
  evwheel::Reactor& reactor_;
  int in_;
  std::function<void(char)> on_command_;
};

// In the child: moves the pipe ends to 3 and 4 and closes everything else above 2.
inline void keep_only_pipes(int& in, int& out) {
  int high_in = ::fcntl(in, F_DUPFD_CLOEXEC, 600), high_out = ::fcntl(out, F_DUPFD_CLOEXEC, 600);
  std::vector<int> open;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir))
      if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != ::dirfd(dir)) open.push_back(std::atoi(entry->d_name));
    ::closedir(dir);
  }
  for (int fd : open)
    if (fd > 2 && fd != high_in && fd != high_out) ::close(fd);
  in = ::dup3(high_in, 3, O_CLOEXEC);
  out = ::dup3(high_out, 4, O_CLOEXEC);
  ::close(high_in);
  ::close(high_out);
}

// The parent's handle on one forked child.
template <class Message>
class ChildProcess {
 public:
  // Runs body(commands_in, messages_out) -> exit status in a forked process (status 5 if it
  // throws).  started() is false if the pipes or the fork failed.
  template <class Body>
  explicit ChildProcess(Body body) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) return;
    if (::pipe2(from_child, O_CLOEXEC) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      return;
    }
    std::fflush(nullptr);  // nothing buffered may be written twice
    pid_ = ::fork();
    if (pid_ == 0) {
      int in = to_child[0], out = from_child[1];
      keep_only_pipes(in, out);
      int status = 5;
      try {
        status = body(in, out);
      } catch (...) {
      }
      std::fflush(nullptr);
      ::_exit(status);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    commands_ = to_child[1];
    messages_ = from_child[0];
    if (pid_ < 0) close_pipes();
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    close_pipes();
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int messages_fd() const { return messages_; }  // for a parent that waits on its own reactor
  void signal(int number) const { ::kill(pid_, number); }
  bool command(char c) const { return ::write(commands_, &c, 1) == 1; }

  // The next message within `timeout`.
  template <class Rep, class Period>
  bool next(Message& message, std::chrono::duration<Rep, Period> timeout) const {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout);
    return receive(messages_, message, std::max(ms, std::chrono::milliseconds(0)));
  }

  // Asks the child to quit and reaps it: its exit status, or -1 if it had to be killed.
  int finish(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (pid_ <= 0) return -1;  // never started, or already reaped
    command('q');
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pid_ = -1;
    close_pipes();
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  void close_pipes() {
    if (commands_ >= 0) ::close(commands_);
    if (messages_ >= 0) ::close(messages_);
    commands_ = messages_ = -1;
  }
  pid_t pid_ = -1;
  int commands_ = -1, messages_ = -1;
};

}  // namespace command_pipe
