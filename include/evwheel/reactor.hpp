// reactor — one thread's event loop: epoll readiness dispatch, timers on timing wheels driven
// by a single timerfd, and work posted from other threads through an eventfd.
//
// Threading rule ("one loop per thread"): a Reactor and everything registered with it belong to
// the thread that runs it (before the first run: the thread that made it).  Only stop() and
// post() may be called from other threads.  Builds without NDEBUG check the rule on every
// registration, timer and connection call and abort with a message naming both threads: a
// sanitizer sees a cross-thread call only when the race happens, this check sees it every time.
//
// Hot path: dispatching an event, advancing the wheels and re-arming the timerfd allocate
// nothing and take no lock.  The timerfd is armed for the earliest due slot of the attached
// wheels, never periodically, so a reactor with nothing to do makes no wake-ups at all.
//
// Stale events: every registration gets a new generation number, carried in its epoll event.
// When a handler removes a descriptor (its own or another one in the same epoll_wait batch),
// later events of that batch for the old registration are dropped, even when the descriptor
// number has already been reused by a new registration.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "evwheel/fd_table.hpp"
#include "evwheel/mailbox.hpp"
#include "evwheel/timer_wheel.hpp"

namespace evwheel {

// Receives readiness for one registered descriptor; `events` is epoll's mask (EPOLLIN, ...).
class IoHandler {
 public:
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

struct ReactorOptions {
  // The reactor's own wheel, used by run_after()/run_every(): general timers want 1 ms.
  TimerWheelOptions timers{};
  // Events taken per epoll_wait call.
  int max_events = 1024;
  // This reactor's number in ConnectionIds (ReactorPool numbers its reactors 0, 1, ...).
  uint16_t index = 0;
  // Bytes of letters from other threads that may wait for the loop (see mailbox.hpp); memory
  // is taken only when the first letter comes.
  std::size_t mailbox_bytes = std::size_t{1} << 20;
};

// Identifies a timer made by run_after()/run_every(); 0 is never a valid id.
using TimerId = uint64_t;

class Reactor {
 public:
  using Task = std::function<void()>;

  // Throws std::system_error if epoll, the timerfd or the eventfd cannot be created, and
  // std::invalid_argument on bad options.
  explicit Reactor(ReactorOptions options = {});
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Descriptors.  add() registers `fd` (level-triggered unless `events` has EPOLLET) with a
  // handler that must outlive the registration; remove() must come before close(fd).
  // add() and modify() throw std::system_error with epoll_ctl's errno (EEXIST, EBADF, ...;
  // ENOENT when modifying an unregistered fd).  remove() never fails: an unregistered fd is
  // ignored, and once removed no event of the old registration is dispatched.
  void add(int fd, uint32_t events, IoHandler& handler);
  void modify(int fd, uint32_t events);
  void remove(int fd) noexcept;
  bool registered(int fd) const noexcept;
  // The generation of `fd`'s latest registration: unique per descriptor number for the life of
  // the reactor (64 bits), unchanged by remove() until the number is registered again.
  uint64_t generation(int fd) const noexcept;

  // The loop.  run() iterates until stop(); run_once() waits at most `max_wait` (negative:
  // until something happens), dispatches one batch, runs due timers and posted tasks, and
  // returns how many descriptor events it dispatched.
  void run();
  int run_once(Duration max_wait);
  void stop() noexcept;      // thread-safe; run() returns after the current iteration
  void post(Task task);      // thread-safe; `task` runs on the loop thread, in posting order

  // Letters for connections (mailbox.hpp).  mail() is thread-safe and never blocks: false when
  // the mailbox is full (counted in mailbox().refused()).  Letters are handed to their
  // receiver on the loop thread in the order they were put; one whose receiver is gone is
  // dropped.  Receivers are numbered from 0 on each reactor (at most 65535 at a time).
  // A receiver that throws from receive() loses the rest of that batch (Mailbox::lost()).
  // A letter for receiver kEveryReceiver goes to every receiver of the reactor.  An iteration
  // delivers at most kLettersPerPass letters (about 10 ms of sends here) and the next one
  // goes on without sleeping: a flood of sends from other threads delays pings and timers by
  // one pass, not by a whole mailbox.
  static constexpr uint16_t kEveryReceiver = UINT16_MAX;
  static constexpr std::size_t kLettersPerPass = 1024;
  bool mail(const Mailbox::Letter& letter);
  uint16_t add_receiver(MessageReceiver& receiver);
  void remove_receiver(uint16_t number) noexcept;
  const Mailbox& mailbox() const noexcept { return mailbox_; }
  uint16_t index() const noexcept { return index_; }

  // The monotonic time read once per iteration (after epoll_wait returns).
  TimePoint now() const noexcept { return now_; }
  // Re-reads the clock, for code that just did something slow.
  TimePoint update_now() noexcept;
  // Completed loop iterations (tests use it to show an idle loop does not wake up).
  uint64_t iterations() const noexcept { return iterations_; }
  bool in_loop_thread() const noexcept {
    return std::this_thread::get_id() == owner_.load(std::memory_order_relaxed);
  }
  // Aborts with a message unless called on the loop thread (a no-op when NDEBUG is defined).
  void assert_in_loop_thread() const noexcept;

  // Timers.  The reactor's own wheel; other wheels (a heartbeat's) can be attached so the one
  // timerfd wakes the loop for the earliest of them.  An attached wheel must be detached (or
  // the reactor destroyed) before the wheel is.
  TimerWheel& timers() noexcept { return timers_; }
  void attach(TimerWheel& wheel);
  void detach(TimerWheel& wheel) noexcept;

  // One-shot and repeating callbacks on the reactor's wheel.  A repeating timer that fell
  // behind fires once and then keeps its period from that moment.  cancel() returns whether
  // the timer was still pending; it is safe from inside the timer's own callback.
  TimerId run_after(Duration delay, Task task);
  TimerId run_every(Duration period, Task task);
  bool cancel(TimerId id) noexcept;

 private:
  struct FdSlot {
    IoHandler* handler = nullptr;  // null: not registered
    uint64_t generation = 0;       // of the latest registration; its low half is in the cookie
  };
  struct UserTimer;
  class Internal;

  TimerId add_timer(Duration delay, Duration period, Task task);
  static void on_user_timer(TimerEntry& entry);
  int dispatch(int ready);  // the ready events to their handlers; returns how many went
  void run_timers();
  bool arm_timerfd();  // true when a timer is already due (the loop must not sleep)
  void on_timer_fd();
  void drain_wakeups();
  void wake_if_posted() noexcept;
  void wake() noexcept;
  void run_posted();
  void deliver_mail();

  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int wake_fd_ = -1;
  // Atomic only so that the check itself is no data race when it catches another thread.
  std::atomic<std::thread::id> owner_;
  TimePoint now_{};
  uint64_t iterations_ = 0;
  std::atomic<bool> stopping_{false};

  FdTable<FdSlot, 1024> slots_;          // 16 KiB chunks of registrations, by descriptor
  std::vector<epoll_event> events_;     // one epoll_wait batch
  std::unique_ptr<Internal> timer_fd_handler_;
  std::unique_ptr<Internal> wake_fd_handler_;

  TimerWheel timers_;
  std::vector<TimerWheel*> wheels_;     // timers_ first, then attached ones
  TimePoint armed_ = TimePoint::max();  // when the timerfd fires; max() = disarmed

  std::unordered_map<TimerId, std::unique_ptr<UserTimer>> user_timers_;
  TimerId next_timer_id_ = 1;
  TimerId firing_timer_ = 0;
  bool firing_cancelled_ = false;

  uint16_t index_;
  Mailbox mailbox_;
  std::atomic<bool> mail_waiting_{false};
  std::vector<MessageReceiver*> receivers_;  // by number; null: free

  std::mutex posted_mutex_;
  std::vector<Task> posted_;
  std::vector<Task> running_;           // posted_ swapped out, so posting never waits on tasks
  // Tasks were posted since the last run_posted(): one eventfd write per batch, and the loop's
  // lock-free check for work.  Written under posted_mutex_.
  std::atomic<bool> wake_pending_{false};
};

}  // namespace evwheel
