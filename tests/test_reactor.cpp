// Unit tests for evwheel::Reactor (include/evwheel/reactor.hpp): readiness dispatch, stale-event
// suppression, error reporting, cross-thread post()/stop(), timers, idle behaviour and the
// per-iteration clock.
//
// Conventions: descriptors and handlers are declared before the Reactor so the reactor goes
// first (no descriptor is closed while registered); every test that opens descriptors starts
// with an FdLeakCheck.  Waits on real time are capped (5-10 s) only so that a broken reactor
// fails instead of hanging; no assertion is about speed except where the contract sets a bound.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "evwheel/reactor.hpp"
#include "evwheel/timer_wheel.hpp"
#include "fd_count.hpp"

using namespace std::chrono_literals;
using evwheel::Duration;
using evwheel::Reactor;
using evwheel::TimePoint;
using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the reactor's clock

namespace {

// At scope exit, checks that every descriptor opened since construction was closed.
// Declare it first in a test so it is destroyed last.
struct FdLeakCheck {
  std::size_t before = open_fd_count();
  ~FdLeakCheck() { CHECK(open_fd_count() == before); }
};

// Owns one descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) { REQUIRE(fd >= 0); }
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};
Pipe make_pipe() {
  int p[2];
  REQUIRE(::pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  return {Fd(p[0]), Fd(p[1])};
}

struct SocketPair {
  Fd a, b;
};
SocketPair make_socketpair() {
  int s[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) == 0);
  return {Fd(s[0]), Fd(s[1])};
}

Fd make_eventfd(unsigned initial = 0) { return Fd(::eventfd(initial, EFD_NONBLOCK | EFD_CLOEXEC)); }

// A readable eventfd occupying exactly descriptor number `number` (which must be free).
Fd make_eventfd_at(int number) {
  Fd fd = make_eventfd(1);
  if (fd.get() == number) return fd;
  int moved = ::dup3(fd.get(), number, O_CLOEXEC);
  REQUIRE(moved == number);
  return Fd(moved);
}

void write_byte(int fd) {
  char c = 'x';
  REQUIRE(::write(fd, &c, 1) == 1);
}
void read_byte(int fd) {
  char c;
  REQUIRE(::read(fd, &c, 1) == 1);
}
void signal_eventfd(int fd) {
  uint64_t one = 1;
  REQUIRE(::write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one));
}
bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Records every event mask it receives, then runs `action` if set.
struct Recorder final : evwheel::IoHandler {
  std::vector<uint32_t> events;
  std::function<void(uint32_t)> action;
  void on_io(uint32_t ev) override {
    events.push_back(ev);
    if (action) action(ev);
  }
  std::size_t count() const { return events.size(); }
};

// Iterates until done() holds or `cap` passes; returns done().
template <class Pred>
bool run_until(Reactor& r, Pred done, Duration cap = 5s) {
  auto limit = Clock::now() + cap;
  while (!done()) {
    if (Clock::now() >= limit) return false;
    r.run_once(10ms);
  }
  return true;
}

// Iterates for at least `span` of real time.
void run_for(Reactor& r, Duration span) {
  auto end = Clock::now() + span;
  for (Duration left = span; left > 0ns; left = end - Clock::now()) r.run_once(left);
}

// Waits for a future, failing (and aborting, since the loop cannot be joined) after 10 s.
template <class T>
void wait_ready(std::future<T>& f, const char* what) {
  if (f.wait_for(10s) == std::future_status::ready) return;
  FAIL_CHECK(what);
  std::fflush(nullptr);
  std::abort();
}

// Whether thread `tid` of this process sleeps in epoll_wait right now, in the kernel's own
// words (/proc/self/task/TID/syscall: the number of the system call it is blocked in).
bool in_epoll_wait(pid_t tid) {
  std::ifstream file("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  if (!(file >> number)) return false;  // "running"
  if (number == SYS_epoll_wait || number == SYS_epoll_pwait) return true;
#ifdef SYS_epoll_pwait2
  if (number == SYS_epoll_pwait2) return true;
#endif
  return false;
}

// Waits until thread `tid` blocks in epoll_wait; fails the test after 10 s.
void wait_until_blocked(pid_t tid) {
  auto limit = Clock::now() + 10s;
  while (!in_epoll_wait(tid)) {
    if (Clock::now() >= limit) {
      FAIL_CHECK("the loop thread did not block in epoll_wait within 10 s");
      return;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// The kernel's id of the calling thread.
pid_t this_thread_id() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Runs reactor.run() on its own thread.
class LoopThread {
 public:
  explicit LoopThread(Reactor& reactor)
      : reactor_(reactor), returned_(done_.get_future()), thread_([this] {
          reactor_.run();
          done_.set_value();
        }) {}
  ~LoopThread() {
    if (thread_.joinable()) {
      reactor_.stop();
      join();
    }
  }
  bool returned() const { return returned_.wait_for(0s) == std::future_status::ready; }
  // Waits for run() to return.  If it has not within 10 s, that fails the test, and one more
  // stop() (a direct wake-up) gets a chance to end the loop before the run is aborted.
  void join() {
    if (returned_.wait_for(10s) != std::future_status::ready) {
      FAIL_CHECK("Reactor::run() did not return within 10 s");
      reactor_.stop();
      wait_ready(returned_, "Reactor::run() did not return even after a second stop()");
    }
    thread_.join();
  }

 private:
  Reactor& reactor_;
  std::promise<void> done_;
  std::future<void> returned_;
  std::thread thread_;
};

// Bounds a blocking run_once(-1) without adding a timer (a timer would itself wake the loop):
// unless dismissed within `after`, a thread of its own makes a registered pipe readable.
// rang() tells, after dismiss(), whether the loop needed that.
class Alarm {
 public:
  Alarm(Reactor& reactor, Duration after) : reactor_(reactor), pipe_(make_pipe()) {
    reactor_.add(pipe_.read.get(), EPOLLIN, handler_);
    thread_ = std::thread([this, after, dismissed = dismissed_.get_future()] {
      if (dismissed.wait_for(after) == std::future_status::timeout) {
        char c = 'x';
        [[maybe_unused]] auto n = ::write(pipe_.write.get(), &c, 1);
      }
    });
  }
  ~Alarm() {
    dismiss();
    reactor_.remove(pipe_.read.get());
  }
  void dismiss() {
    if (!thread_.joinable()) return;
    dismissed_.set_value();
    thread_.join();
  }
  bool rang() const { return handler_.count() > 0 || readable_now(pipe_.read.get()); }

 private:
  Reactor& reactor_;
  Pipe pipe_;
  Recorder handler_;
  std::promise<void> dismissed_;
  std::thread thread_;
};

// The errno carried by the std::system_error that f() throws (generic category); 0 if f()
// throws nothing, -1 if the error is in another category.
template <class F>
int system_error_of(F&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return e.code().category() == std::generic_category() ? e.code().value() : -1;
  }
  return 0;
}

// A TimerEntry for an extra wheel that counts its expiries.
struct CountingEntry : evwheel::TimerEntry {
  int fired = 0;
  Clock::time_point at{};
  CountingEntry() : TimerEntry(&CountingEntry::on_fire) {}
  static void on_fire(evwheel::TimerEntry& entry) {
    auto& self = static_cast<CountingEntry&>(entry);
    ++self.fired;
    self.at = Clock::now();
  }
};

}  // namespace

TEST_SUITE("reactor") {

// ---------------------------------------------------------------------------------------------
// Readiness dispatch

TEST_CASE("a pipe's read end is dispatched EPOLLIN, level-triggered, until drained") {
  FdLeakCheck fds;
  Pipe p = make_pipe();
  Recorder h;
  Reactor r;
  r.add(p.read.get(), EPOLLIN, h);
  CHECK(r.registered(p.read.get()));

  CHECK(r.run_once(0ns) == 0);
  CHECK(h.count() == 0);

  write_byte(p.write.get());
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 1);
  CHECK(h.events[0] == EPOLLIN);

  CHECK(r.run_once(0ns) == 1);  // not read yet: reported again
  CHECK(h.count() == 2);

  read_byte(p.read.get());
  CHECK(r.run_once(0ns) == 0);
  CHECK(h.count() == 2);
}

TEST_CASE("a pipe's write end is dispatched EPOLLOUT; peer close gives EPOLLHUP to the reader and EPOLLERR to the writer") {
  FdLeakCheck fds;
  Pipe to_reader = make_pipe();  // we watch its read end, then close its write end
  Pipe to_writer = make_pipe();  // we watch its write end, then close its read end
  Recorder reader, writer;
  Reactor r;
  r.add(to_reader.read.get(), EPOLLIN, reader);
  r.add(to_writer.write.get(), EPOLLOUT, writer);

  CHECK(r.run_once(0ns) == 1);
  CHECK(reader.count() == 0);
  REQUIRE(writer.count() == 1);
  CHECK(writer.events[0] == EPOLLOUT);

  to_reader.write.reset();
  to_writer.read.reset();
  CHECK(r.run_once(0ns) == 2);
  REQUIRE(reader.count() == 1);
  CHECK((reader.events[0] & EPOLLHUP) != 0);
  CHECK((reader.events[0] & EPOLLIN) == 0);  // no data, only the hang-up
  REQUIRE(writer.count() == 2);
  CHECK((writer.events[1] & EPOLLERR) != 0);
}

TEST_CASE("an eventfd is dispatched EPOLLIN once signalled and EPOLLOUT while writable") {
  FdLeakCheck fds;
  Fd in = make_eventfd();
  Fd out = make_eventfd();
  Recorder hin, hout;
  Reactor r;
  r.add(in.get(), EPOLLIN, hin);
  r.add(out.get(), EPOLLOUT, hout);

  CHECK(r.run_once(0ns) == 1);
  CHECK(hin.count() == 0);
  REQUIRE(hout.count() == 1);
  CHECK(hout.events[0] == EPOLLOUT);

  signal_eventfd(in.get());
  CHECK(r.run_once(0ns) == 2);
  REQUIRE(hin.count() == 1);
  CHECK(hin.events[0] == EPOLLIN);

  uint64_t value = 0;
  REQUIRE(::read(in.get(), &value, sizeof value) == static_cast<ssize_t>(sizeof value));
  CHECK(value == 1);
  r.remove(out.get());
  CHECK(r.run_once(0ns) == 0);
  CHECK(hin.count() == 1);
}

TEST_CASE("EPOLLET registrations are dispatched once per edge") {
  FdLeakCheck fds;
  Fd efd = make_eventfd();
  Recorder h;
  Reactor r;
  r.add(efd.get(), EPOLLIN | EPOLLET, h);

  signal_eventfd(efd.get());
  CHECK(r.run_once(0ns) == 1);
  CHECK(r.run_once(0ns) == 0);  // still readable, but no new edge
  CHECK(h.count() == 1);
  signal_eventfd(efd.get());
  CHECK(r.run_once(0ns) == 1);
  CHECK(h.count() == 2);
}

TEST_CASE("a socketpair reports EPOLLIN for data, EPOLLRDHUP on peer shutdown and EPOLLHUP on peer close") {
  FdLeakCheck fds;
  SocketPair s = make_socketpair();
  Recorder h, hw;
  Reactor r;
  r.add(s.a.get(), EPOLLIN | EPOLLRDHUP, h);

  CHECK(r.run_once(0ns) == 0);
  write_byte(s.b.get());
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 1);
  CHECK(h.events[0] == EPOLLIN);
  read_byte(s.a.get());
  CHECK(r.run_once(0ns) == 0);

  REQUIRE(::shutdown(s.b.get(), SHUT_WR) == 0);
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 2);
  CHECK((h.events[1] & EPOLLRDHUP) != 0);
  CHECK((h.events[1] & EPOLLHUP) == 0);

  s.b.reset();
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 3);
  CHECK((h.events[2] & EPOLLHUP) != 0);
  CHECK((h.events[2] & EPOLLRDHUP) != 0);

  // The other direction: a writable socket reports EPOLLOUT.
  SocketPair w = make_socketpair();
  r.add(w.a.get(), EPOLLOUT, hw);
  r.remove(s.a.get());
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(hw.count() == 1);
  CHECK(hw.events[0] == EPOLLOUT);
  r.remove(w.a.get());
}

TEST_CASE("modify() changes the interest set of a registration") {
  FdLeakCheck fds;
  SocketPair s = make_socketpair();
  Recorder h;
  Reactor r;
  r.add(s.a.get(), EPOLLIN, h);
  CHECK(r.run_once(0ns) == 0);  // nothing to read

  r.modify(s.a.get(), EPOLLOUT);
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 1);
  CHECK(h.events[0] == EPOLLOUT);

  write_byte(s.b.get());
  r.modify(s.a.get(), EPOLLIN);
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 2);
  CHECK(h.events[1] == EPOLLIN);  // writable too, but no longer asked for

  r.modify(s.a.get(), 0);
  CHECK(r.run_once(0ns) == 0);  // data pending, interest empty
  CHECK(h.count() == 2);

  r.modify(s.a.get(), EPOLLIN | EPOLLOUT);
  CHECK(r.run_once(0ns) == 1);
  REQUIRE(h.count() == 3);
  CHECK(h.events[2] == (EPOLLIN | EPOLLOUT));
}

TEST_CASE("remove() stops delivery and a removed descriptor can be added again") {
  FdLeakCheck fds;
  Pipe p = make_pipe();
  Recorder h;
  Reactor r;
  r.add(p.read.get(), EPOLLIN, h);
  write_byte(p.write.get());
  CHECK(r.run_once(0ns) == 1);

  r.remove(p.read.get());
  CHECK_FALSE(r.registered(p.read.get()));
  CHECK(r.run_once(0ns) == 0);  // still readable, no longer watched
  CHECK(h.count() == 1);

  r.add(p.read.get(), EPOLLIN, h);
  CHECK(r.run_once(0ns) == 1);
  CHECK(h.count() == 2);
}

TEST_CASE("a handler may remove and close its own descriptor") {
  FdLeakCheck fds;
  Pipe p = make_pipe();
  Recorder h;
  Reactor r;
  int fd = p.read.get();
  h.action = [&](uint32_t) {
    r.remove(fd);
    p.read.reset();
  };
  r.add(fd, EPOLLIN, h);
  write_byte(p.write.get());
  CHECK(r.run_once(0ns) == 1);
  CHECK_FALSE(r.registered(fd));
  CHECK(r.run_once(0ns) == 0);
  CHECK(h.count() == 1);
}

// ---------------------------------------------------------------------------------------------
// Stale events

// Two pipes are made readable before run_once(), so both events are in the same epoll_wait
// batch.  Whichever handler runs first acts on the other one (the victim); the victim's event
// is still in the batch and must be dropped.
TEST_CASE("an event of a descriptor removed and closed earlier in the same batch is not delivered") {
  FdLeakCheck fds;
  Pipe pa = make_pipe();
  Pipe pb = make_pipe();
  Recorder ha, hb;
  Reactor r;
  Recorder* victim = nullptr;
  auto remove_other = [&r, &victim](Pipe* other, Recorder* other_handler) {
    return [&r, &victim, other, other_handler](uint32_t) {
      if (victim) return;
      victim = other_handler;
      r.remove(other->read.get());
      other->read.reset();
    };
  };
  ha.action = remove_other(&pb, &hb);
  hb.action = remove_other(&pa, &ha);
  r.add(pa.read.get(), EPOLLIN, ha);
  r.add(pb.read.get(), EPOLLIN, hb);
  write_byte(pa.write.get());
  write_byte(pb.write.get());
  REQUIRE(readable_now(pa.read.get()));
  REQUIRE(readable_now(pb.read.get()));

  CHECK(r.run_once(0ns) == 1);
  REQUIRE(victim != nullptr);
  CHECK(victim->count() == 0);
  CHECK(ha.count() + hb.count() == 1);

  // The survivor stays registered (level-triggered, still readable); the victim hears nothing.
  CHECK(r.run_once(0ns) == 1);
  CHECK(victim->count() == 0);
  CHECK(ha.count() + hb.count() == 2);
}

TEST_CASE("a stale event reaches neither the removed handler nor a new registration that reuses its descriptor number") {
  FdLeakCheck fds;
  Pipe pa = make_pipe();
  Pipe pb = make_pipe();
  Fd reused;  // the new descriptor, created inside the batch at the victim's number
  Recorder ha, hb, hc;
  Reactor r;
  int phase = 1;                  // 1: the batch with the stale event; 2: afterwards
  std::vector<int> c_phases;      // the phase of each event hc got
  std::vector<uint64_t> c_reads;  // what hc read from its own descriptor
  int victim_number = -1;
  Recorder* victim = nullptr;
  hc.action = [&](uint32_t) {
    c_phases.push_back(phase);
    uint64_t value = 0;
    if (::read(reused.get(), &value, sizeof value) == static_cast<ssize_t>(sizeof value))
      c_reads.push_back(value);
  };
  auto replace_other = [&](Pipe* other, Recorder* other_handler) {
    return [&, other, other_handler](uint32_t) {
      if (victim) return;
      victim = other_handler;
      victim_number = other->read.get();
      r.remove(victim_number);
      other->read.reset();
      reused = make_eventfd_at(victim_number);  // readable at once
      r.add(reused.get(), EPOLLIN, hc);
    };
  };
  ha.action = replace_other(&pb, &hb);
  hb.action = replace_other(&pa, &ha);
  r.add(pa.read.get(), EPOLLIN, ha);
  r.add(pb.read.get(), EPOLLIN, hb);
  write_byte(pa.write.get());
  write_byte(pb.write.get());
  REQUIRE(readable_now(pa.read.get()));
  REQUIRE(readable_now(pb.read.get()));

  CHECK(r.run_once(0ns) == 1);
  REQUIRE(victim != nullptr);
  CHECK(reused.get() == victim_number);
  CHECK(r.registered(victim_number));
  CHECK(victim->count() == 0);
  CHECK(hc.count() == 0);

  // Next batch: hc gets the event of its own registration (its eventfd, value 1), once.
  phase = 2;
  CHECK(r.run_once(0ns) == 2);  // survivor + hc
  CHECK(victim->count() == 0);
  CHECK(c_phases == std::vector<int>{2});
  CHECK(c_reads == std::vector<uint64_t>{1});
  CHECK(hc.events == std::vector<uint32_t>{EPOLLIN});

  CHECK(r.run_once(0ns) == 1);  // hc drained its eventfd: only the survivor
  CHECK(hc.count() == 1);
  CHECK(victim->count() == 0);
  r.remove(victim_number);
}

TEST_CASE("re-adding a descriptor removed in the same batch drops the old registration's pending event") {
  FdLeakCheck fds;
  Pipe pa = make_pipe();
  Pipe pb = make_pipe();
  Recorder ha, hb;
  Reactor r;
  Recorder* victim = nullptr;
  auto readd_other = [&r, &victim](Pipe* other, Recorder* other_handler) {
    return [&r, &victim, other, other_handler](uint32_t) {
      if (victim) return;
      victim = other_handler;
      r.remove(other->read.get());
      r.add(other->read.get(), EPOLLIN, *other_handler);
    };
  };
  ha.action = readd_other(&pb, &hb);
  hb.action = readd_other(&pa, &ha);
  r.add(pa.read.get(), EPOLLIN, ha);
  r.add(pb.read.get(), EPOLLIN, hb);
  write_byte(pa.write.get());
  write_byte(pb.write.get());

  CHECK(r.run_once(0ns) == 1);
  REQUIRE(victim != nullptr);
  CHECK(victim->count() == 0);
  CHECK(r.run_once(0ns) == 2);  // the new registration delivers from the next batch on
  CHECK(victim->count() == 1);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST_CASE("add() of a bad or already registered descriptor throws std::system_error with epoll's errno") {
  FdLeakCheck fds;
  Pipe p = make_pipe();
  Pipe closed = make_pipe();
  Fd regular(::memfd_create("evwheel-test", MFD_CLOEXEC));
  Recorder h, other;
  Reactor r;

  CHECK(system_error_of([&] { r.add(-1, EPOLLIN, h); }) == EBADF);
  int closed_number = closed.read.get();
  closed.read.reset();
  CHECK(system_error_of([&] { r.add(closed_number, EPOLLIN, h); }) == EBADF);
  CHECK_FALSE(r.registered(closed_number));
  // A regular file cannot be polled: epoll_ctl says EPERM.
  CHECK(system_error_of([&] { r.add(regular.get(), EPOLLIN, h); }) == EPERM);
  CHECK_FALSE(r.registered(regular.get()));

  r.add(p.read.get(), EPOLLIN, h);
  CHECK(system_error_of([&] { r.add(p.read.get(), EPOLLIN, other); }) == EEXIST);
  CHECK_THROWS_AS(r.add(p.read.get(), EPOLLOUT, h), std::system_error);

  // The failed add() left the first registration alone.
  write_byte(p.write.get());
  CHECK(r.run_once(0ns) == 1);
  CHECK(h.count() == 1);
  CHECK(other.count() == 0);
}

TEST_CASE("modify() of an unregistered descriptor throws ENOENT and remove() of one is harmless") {
  FdLeakCheck fds;
  Pipe p = make_pipe();
  Pipe q = make_pipe();
  Recorder h;
  Reactor r;

  CHECK(system_error_of([&] { r.modify(p.read.get(), EPOLLIN); }) == ENOENT);
  CHECK(system_error_of([&] { r.modify(-1, EPOLLIN); }) == ENOENT);
  r.add(p.read.get(), EPOLLIN, h);
  r.remove(p.read.get());
  CHECK(system_error_of([&] { r.modify(p.read.get(), EPOLLIN); }) == ENOENT);

  // remove(): never registered, out of range, negative, removed twice.
  r.add(q.read.get(), EPOLLIN, h);
  r.remove(p.read.get());
  r.remove(p.write.get());
  r.remove(-1);
  r.remove(1 << 20);
  r.remove(p.read.get());
  CHECK(r.registered(q.read.get()));
  write_byte(q.write.get());
  CHECK(r.run_once(0ns) == 1);  // the real registration is untouched
  CHECK(h.count() == 1);
}

TEST_CASE("bad options and a non-positive run_every() period throw std::invalid_argument") {
  FdLeakCheck fds;
  evwheel::ReactorOptions no_events;
  no_events.max_events = 0;
  CHECK_THROWS_AS(Reactor{no_events}, std::invalid_argument);
  evwheel::ReactorOptions bad_tick;
  bad_tick.timers.tick = 0ns;
  CHECK_THROWS_AS(Reactor{bad_tick}, std::invalid_argument);

  Reactor r;
  CHECK_THROWS_AS(r.run_every(0ns, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(r.run_every(-1ms, [] {}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Posting and stopping

TEST_CASE("tasks posted before the loop runs execute in posting order on the next iteration") {
  FdLeakCheck fds;
  Reactor r;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) r.post([&order, i] { order.push_back(i); });
  CHECK(order.empty());
  r.run_once(0ns);
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  r.run_once(0ns);
  CHECK(order.size() == 5);  // each ran once
}

TEST_CASE("post() from several threads while the loop runs executes every task once, in per-thread order, on the loop thread") {
  FdLeakCheck fds;
  constexpr int kThreads = 4;
  constexpr int kPosts = 10000;
  Reactor r;
  std::vector<std::vector<int>> seen(kThreads);  // touched by the loop thread only
  int off_loop_thread = 0;
  std::thread::id loop_id;
  std::promise<void> started;
  auto started_future = started.get_future();
  r.post([&] {
    loop_id = std::this_thread::get_id();
    started.set_value();
  });
  LoopThread loop(r);
  wait_ready(started_future, "the loop never ran its first task");

  std::atomic<bool> go{false};
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = 0; i < kPosts; ++i) {
        r.post([&, t, i] {
          if (!r.in_loop_thread()) ++off_loop_thread;
          seen[static_cast<std::size_t>(t)].push_back(i);
        });
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& poster : posters) poster.join();
  r.post([&] { r.stop(); });  // posted last: runs after every other task
  loop.join();

  bool ran_on_other_thread = loop_id != std::this_thread::get_id();
  CHECK(ran_on_other_thread);
  CHECK(off_loop_thread == 0);
  for (int t = 0; t < kThreads; ++t) {
    const auto& got = seen[static_cast<std::size_t>(t)];
    CHECK(got.size() == static_cast<std::size_t>(kPosts));
    int out_of_order = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got[i] != static_cast<int>(i)) ++out_of_order;
    CHECK(out_of_order == 0);
  }
}

TEST_CASE("post() from another thread wakes a blocked run() every time") {
  FdLeakCheck fds;
  constexpr int kRounds = 50;
  std::vector<std::promise<void>> ran(kRounds);  // outlives the loop, whatever happens
  Reactor r;
  std::promise<pid_t> started;
  auto started_future = started.get_future();
  r.post([&] { started.set_value(this_thread_id()); });
  LoopThread loop(r);
  wait_ready(started_future, "the loop never ran its first task");
  const pid_t loop_tid = started_future.get();
  int rounds_done = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto ran_future = ran[static_cast<std::size_t>(round)].get_future();
    wait_until_blocked(loop_tid);  // each post finds the loop asleep
    r.post([&ran, round] { ran[static_cast<std::size_t>(round)].set_value(); });
    if (ran_future.wait_for(5s) != std::future_status::ready) break;
    ++rounds_done;
  }
  CHECK(rounds_done == kRounds);
  r.stop();
  loop.join();
}

TEST_CASE("stop() from another thread makes a blocked run() return") {
  FdLeakCheck fds;
  Reactor r;
  std::promise<pid_t> started;
  auto started_future = started.get_future();
  r.post([&] { started.set_value(this_thread_id()); });
  LoopThread loop(r);
  wait_ready(started_future, "the loop never ran its first task");
  wait_until_blocked(started_future.get());
  CHECK_FALSE(loop.returned());
  r.stop();
  loop.join();
}

TEST_CASE("stop() before run() makes run() return at once, and a later run() works again") {
  FdLeakCheck fds;
  Reactor r;
  r.stop();
  r.run();
  CHECK(r.iterations() == 0);

  bool ran = false;
  r.post([&] {
    ran = true;
    r.stop();
  });
  r.run();
  CHECK(ran);

  // And a third run() blocks until stopped again.
  uint64_t before = r.iterations();
  std::promise<pid_t> started;
  auto started_future = started.get_future();
  r.post([&] { started.set_value(this_thread_id()); });
  LoopThread loop(r);
  wait_ready(started_future, "the loop never ran its task");
  wait_until_blocked(started_future.get());
  CHECK_FALSE(loop.returned());
  r.stop();
  loop.join();
  CHECK(r.iterations() > before);
}

TEST_CASE("a posted task that throws propagates out of run_once() and the tasks after it run on the next iteration") {
  FdLeakCheck fds;
  Reactor r;
  std::vector<int> order;
  r.post([&] { order.push_back(1); });
  r.post([&] {
    order.push_back(2);
    throw std::runtime_error("task failed");
  });
  r.post([&] { order.push_back(3); });
  r.post([&] { order.push_back(4); });

  CHECK_THROWS_WITH_AS(r.run_once(0ns), "task failed", std::runtime_error);
  CHECK(order == std::vector<int>{1, 2});

  // The requeued tasks wake the loop by themselves: a blocking wait returns without the alarm.
  Alarm alarm(r, 3s);
  r.run_once(Duration(-1));
  alarm.dismiss();
  CHECK_FALSE(alarm.rang());
  CHECK(order == std::vector<int>{1, 2, 3, 4});
  r.run_once(0ns);
  CHECK(order == std::vector<int>{1, 2, 3, 4});  // nothing runs twice
}

// ---------------------------------------------------------------------------------------------
// Timers

TEST_CASE("run_after() fires once and never before its delay") {
  FdLeakCheck fds;
  Reactor r;
  int count = 0;
  Clock::time_point fired_at{};
  TimePoint loop_now{};
  auto t0 = Clock::now();
  evwheel::TimerId id = r.run_after(20ms, [&] {
    ++count;
    fired_at = Clock::now();
    loop_now = r.now();
  });
  CHECK(id != 0);
  REQUIRE(run_until(r, [&] { return count > 0; }));
  CHECK(fired_at - t0 >= 20ms);
  CHECK(loop_now - t0 >= 20ms);
  run_for(r, 40ms);
  CHECK(count == 1);
}

TEST_CASE("run_after() called late in an iteration counts from the call, not from the cached now()") {
  FdLeakCheck fds;
  Reactor r;
  bool fired = false;
  Clock::time_point t0{}, fired_at{};
  r.post([&] {
    std::this_thread::sleep_for(30ms);  // slow work: now() is 30 ms stale from here on
    t0 = Clock::now();
    r.run_after(20ms, [&] {
      fired = true;
      fired_at = Clock::now();
    });
  });
  r.run_once(0ns);
  REQUIRE(run_until(r, [&] { return fired; }));
  CHECK(fired_at - t0 >= 20ms);
}

TEST_CASE("several run_after() timers fire in deadline order, none early") {
  FdLeakCheck fds;
  Reactor r;
  const std::vector<int> delays_ms{40, 10, 30, 20, 50};
  std::vector<int> order;
  std::vector<Clock::time_point> fired_at(delays_ms.size());
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < delays_ms.size(); ++i) {
    r.run_after(std::chrono::milliseconds(delays_ms[i]), [&, i] {
      order.push_back(static_cast<int>(i));
      fired_at[i] = Clock::now();
    });
  }
  REQUIRE(run_until(r, [&] { return order.size() == delays_ms.size(); }));
  CHECK(order == std::vector<int>{1, 3, 2, 0, 4});
  for (std::size_t i = 0; i < delays_ms.size(); ++i) {
    CAPTURE(i);
    CHECK(fired_at[i] - t0 >= std::chrono::milliseconds(delays_ms[i]));
  }
}

TEST_CASE("run_every() repeats, never early, and can cancel itself from its own callback") {
  FdLeakCheck fds;
  Reactor r;
  int count = 0;
  bool cancelled_inside = false;
  std::vector<Clock::time_point> fired_at;
  evwheel::TimerId id = 0;
  auto t0 = Clock::now();
  id = r.run_every(10ms, [&] {
    ++count;
    fired_at.push_back(Clock::now());
    if (count == 3) cancelled_inside = r.cancel(id);
  });
  REQUIRE(run_until(r, [&] { return count >= 3; }));
  CHECK(cancelled_inside);
  run_for(r, 50ms);
  CHECK(count == 3);
  CHECK_FALSE(r.cancel(id));
  for (std::size_t k = 0; k < fired_at.size(); ++k) {
    CAPTURE(k);
    CHECK(fired_at[k] - t0 >= 10ms * static_cast<int>(k + 1));
  }
}

TEST_CASE("a run_every() timer that fell behind fires once, then keeps its period from that moment") {
  FdLeakCheck fds;
  Reactor r;
  std::vector<TimePoint> fired_now;  // r.now() at each firing
  evwheel::TimerId id = r.run_every(10ms, [&] { fired_now.push_back(r.now()); });
  std::this_thread::sleep_for(60ms);  // the loop stalls for about six periods
  r.run_once(0ns);
  CHECK(fired_now.size() == 1);  // one catch-up firing, not a burst
  REQUIRE(run_until(r, [&] { return fired_now.size() >= 3; }));
  for (std::size_t k = 1; k < fired_now.size(); ++k) {
    CAPTURE(k);
    CHECK(fired_now[k] - fired_now[k - 1] >= 10ms);
  }
  CHECK(r.cancel(id));
}

TEST_CASE("cancel() of a pending run_every() timer from outside stops it") {
  FdLeakCheck fds;
  Reactor r;
  int count = 0;
  evwheel::TimerId id = r.run_every(5ms, [&] { ++count; });
  REQUIRE(run_until(r, [&] { return count >= 2; }));
  CHECK(r.cancel(id));
  int at_cancel = count;
  run_for(r, 30ms);
  CHECK(count == at_cancel);
  CHECK_FALSE(r.cancel(id));
}

TEST_CASE("cancel() of a pending timer returns true and it never fires; of a fired or unknown id, false") {
  FdLeakCheck fds;
  Reactor r;
  bool cancelled_fired = false, later_fired = false, quick_fired = false;
  evwheel::TimerId cancelled = r.run_after(10ms, [&] { cancelled_fired = true; });
  CHECK(r.cancel(cancelled));
  CHECK_FALSE(r.cancel(cancelled));
  evwheel::TimerId quick = r.run_after(1ms, [&] { quick_fired = true; });
  r.run_after(30ms, [&] { later_fired = true; });
  REQUIRE(run_until(r, [&] { return later_fired; }));
  CHECK_FALSE(cancelled_fired);
  CHECK(quick_fired);
  CHECK_FALSE(r.cancel(quick));  // already fired
  CHECK_FALSE(r.cancel(0));
  CHECK_FALSE(r.cancel(quick + 1000));
}

TEST_CASE("a timer callback can cancel another timer due at the same time") {
  FdLeakCheck fds;
  Reactor r;
  bool second_fired = false, cancel_result = false, first_fired = false;
  evwheel::TimerId second = 0;
  r.run_after(10ms, [&] {
    first_fired = true;
    cancel_result = r.cancel(second);
  });
  second = r.run_after(10ms, [&] { second_fired = true; });
  REQUIRE(run_until(r, [&] { return first_fired; }));
  run_for(r, 20ms);
  CHECK(cancel_result);
  CHECK_FALSE(second_fired);
}

TEST_CASE("a timer callback can add timers, which fire later in deadline order") {
  FdLeakCheck fds;
  Reactor r;
  std::vector<int> order;
  std::vector<uint64_t> iteration;  // r.iterations() when each callback ran
  auto note = [&](int what) {
    order.push_back(what);
    iteration.push_back(r.iterations());
  };
  int ticks = 0;
  evwheel::TimerId every = 0;
  r.run_after(5ms, [&] {
    note(1);
    r.run_after(15ms, [&] { note(4); });
    r.run_after(0ms, [&] { note(2); });
    r.run_after(5ms, [&] { note(3); });
    every = r.run_every(2ms, [&] {
      if (++ticks == 2) r.cancel(every);
    });
  });
  REQUIRE(run_until(r, [&] { return order.size() == 4; }));
  CHECK(order == std::vector<int>{1, 2, 3, 4});
  CHECK(iteration[1] > iteration[0]);  // a zero delay from a callback still waits for a later iteration
  run_for(r, 20ms);
  CHECK(ticks == 2);
}

// ---------------------------------------------------------------------------------------------
// No periodic wake-ups; extra wheels

TEST_CASE("an idle reactor without timers does not wake up until stop()") {
  FdLeakCheck fds;
  Reactor r;
  LoopThread loop(r);
  std::this_thread::sleep_for(200ms);
  r.stop();
  loop.join();
  CHECK(r.iterations() <= 1);  // the stop() wake-up itself
}

TEST_CASE("a reactor with one 100 ms timer wakes only a few times before it fires (no periodic tick)") {
  FdLeakCheck fds;
  Reactor r;
  bool fired = false;
  Clock::time_point fired_at{};
  auto t0 = Clock::now();
  r.run_after(100ms, [&] {
    fired = true;
    fired_at = Clock::now();
  });
  // A 5 s wait per iteration never cuts a 100 ms sleep short; it only bounds a broken loop.
  while (!fired && Clock::now() - t0 < 10s) r.run_once(5s);
  REQUIRE(fired);
  CHECK(fired_at - t0 >= 100ms);
  CHECK(r.iterations() <= 3);  // cascade re-files from coarser wheel levels plus the firing
}

TEST_CASE("an attached coarse wheel's entries fire from the reactor's wake-ups, and detach() stops that") {
  FdLeakCheck fds;
  evwheel::TimerWheelOptions coarse_options;
  coarse_options.tick = 25ms;
  evwheel::TimerWheel coarse(Clock::now(), coarse_options);
  CountingEntry first, second;
  Reactor r;

  auto t0 = Clock::now();
  TimePoint deadline = t0 + 60ms;
  coarse.schedule(first, deadline);
  r.attach(coarse);
  r.attach(coarse);  // attaching twice is one attachment
  uint64_t before = r.iterations();
  {
    // Blocking waits: only the timerfd armed for the attached wheel can end them before the alarm.
    Alarm alarm(r, 3s);
    while (first.fired == 0 && !alarm.rang()) r.run_once(Duration(-1));
    alarm.dismiss();
    CHECK_FALSE(alarm.rang());
  }
  CHECK(first.fired == 1);
  CHECK(first.at >= deadline);
  CHECK(r.iterations() - before <= 3);

  coarse.schedule(second, Clock::now() + 30ms);
  r.detach(coarse);
  run_for(r, 120ms);
  CHECK(second.fired == 0);
  CHECK(second.scheduled());

  r.attach(coarse);  // attached again, the overdue entry fires
  REQUIRE(run_until(r, [&] { return second.fired == 1; }));
  CHECK(first.fired == 1);
  r.detach(coarse);
}

// ---------------------------------------------------------------------------------------------
// The loop's clock

TEST_CASE("now() is read once per iteration and update_now() re-reads the clock") {
  FdLeakCheck fds;
  Pipe pa = make_pipe();
  Pipe pb = make_pipe();
  Recorder ha, hb;
  Reactor r;
  std::vector<TimePoint> seen;  // now() in each callback of one iteration
  auto look = [&](uint32_t) {
    seen.push_back(r.now());
    std::this_thread::sleep_for(2ms);  // real time moves on; the cached now() must not
  };
  ha.action = look;
  hb.action = look;
  r.post([&] { seen.push_back(r.now()); });
  r.add(pa.read.get(), EPOLLIN, ha);
  r.add(pb.read.get(), EPOLLIN, hb);
  write_byte(pa.write.get());
  write_byte(pb.write.get());

  auto before = Clock::now();
  CHECK(r.run_once(0ns) >= 2);
  auto after = Clock::now();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == seen[1]);
  CHECK(seen[1] == seen[2]);
  CHECK(seen[0] >= before);  // read during this iteration
  CHECK(seen[0] <= after);
  CHECK(r.now() == seen[0]);

  TimePoint cached = r.now();
  std::this_thread::sleep_for(2ms);
  CHECK(r.now() == cached);
  TimePoint fresh = r.update_now();
  CHECK(fresh - cached >= 2ms);
  CHECK(r.now() == fresh);
  CHECK(fresh <= Clock::now());

  r.run_once(0ns);
  CHECK(r.now() >= fresh);
}

}  // TEST_SUITE

TEST_CASE("an iteration delivers at most kLettersPerPass letters; what was posted meanwhile runs between passes, and the loop does not sleep while letters wait") {
  FdLeakCheck fds;
  Reactor r;
  struct Counter : evwheel::MessageReceiver {
    Reactor& reactor;
    std::size_t got = 0;
    std::size_t at_task = 0;  // letters delivered when a task posted by the first one ran
    explicit Counter(Reactor& reactor) : reactor(reactor) {}
    void receive(const evwheel::Mailbox::Letter&) override {
      if (got++ == 0) reactor.post([this] { at_task = got; });
    }
  } counter(r);
  const uint16_t number = r.add_receiver(counter);
  constexpr std::size_t kPasses = 3;
  constexpr std::size_t kLetters = kPasses * Reactor::kLettersPerPass;
  for (std::size_t i = 0; i < kLetters; ++i)
    REQUIRE(r.mail(evwheel::Mailbox::Letter{number, evwheel::Mailbox::Target::one, evwheel::ConnectionId{}, "x"}));
  r.run_once(0ms);
  CHECK(counter.got == Reactor::kLettersPerPass);
  std::size_t passes = 1;
  while (counter.got < kLetters && passes < 2 * kPasses) {
    auto started = Clock::now();
    r.run_once(10s);  // letters still wait: this must not sleep
    CHECK(Clock::now() - started < 5s);
    ++passes;
  }
  CHECK(counter.got == kLetters);
  CHECK(passes == kPasses);
  CHECK(counter.at_task == Reactor::kLettersPerPass);
  r.remove_receiver(number);
}
