// reactor — see include/evwheel/reactor.hpp for the contract.
#include "evwheel/reactor.hpp"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "evwheel/log.hpp"

namespace evwheel {

namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// For failures of the loop itself: the exception reaches the caller of run(), the log reaches
// the operator even when that caller does not report it.
[[noreturn]] void log_and_throw_errno(const char* what) {
  int error = errno;
  log(LogLevel::error, "%s: %s", what, std::strerror(error));
  errno = error;
  throw_errno(what);
}

TimePoint monotonic_now() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return TimePoint(Duration(static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec));
}

// The epoll cookie: descriptor in the low half, the low half of the registration's generation
// in the high half (enough to tell registrations of one batch apart).
uint64_t cookie(int fd, uint64_t generation) {
  return static_cast<uint32_t>(fd) | (generation << 32);
}

int to_epoll_timeout(Duration wait) {
  if (wait.count() < 0) return -1;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return static_cast<int>(std::min<int64_t>(ms, 0x7fffffff));
}

}  // namespace

// The reactor's own descriptors (timerfd, eventfd) dispatch to a member function.
class Reactor::Internal final : public IoHandler {
 public:
  Internal(Reactor& reactor, void (Reactor::*on_ready)()) : reactor_(reactor), on_ready_(on_ready) {}
  void on_io(uint32_t) override { (reactor_.*on_ready_)(); }

 private:
  Reactor& reactor_;
  void (Reactor::*on_ready_)();
};

struct Reactor::UserTimer : TimerEntry {
  UserTimer(Reactor& owner, TimerId timer_id, Duration every, Task fn)
      : TimerEntry(&Reactor::on_user_timer), reactor(owner), id(timer_id), period(every),
        task(std::move(fn)) {}
  Reactor& reactor;
  TimerId id;
  Duration period;  // zero: one-shot
  Task task;
};

Reactor::Reactor(ReactorOptions options)
    : owner_(std::this_thread::get_id()),
      now_(monotonic_now()),
      timers_(now_, options.timers),
      index_(options.index),
      mailbox_(options.mailbox_bytes) {
  if (options.max_events < 1) throw std::invalid_argument("evwheel: max_events must be >= 1");
  events_.resize(static_cast<std::size_t>(options.max_events));
  wheels_.push_back(&timers_);
  try {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw_errno("evwheel: epoll_create1");
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) throw_errno("evwheel: timerfd_create");
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw_errno("evwheel: eventfd");
    timer_fd_handler_ = std::make_unique<Internal>(*this, &Reactor::on_timer_fd);
    wake_fd_handler_ = std::make_unique<Internal>(*this, &Reactor::drain_wakeups);
    add(timer_fd_, EPOLLIN, *timer_fd_handler_);
    add(wake_fd_, EPOLLIN, *wake_fd_handler_);
  } catch (...) {
    for (int fd : {epoll_fd_, timer_fd_, wake_fd_})
      if (fd >= 0) close(fd);
    throw;
  }
}

Reactor::~Reactor() {
  user_timers_.clear();
  close(wake_fd_);
  close(timer_fd_);
  close(epoll_fd_);
}

void Reactor::add(int fd, uint32_t events, IoHandler& handler) {
  assert_in_loop_thread();
  if (fd < 0) {
    errno = EBADF;
    throw_errno("evwheel: Reactor::add");
  }
  FdSlot& slot = slots_.claim(fd);
  if (slot.handler) {
    errno = EEXIST;
    throw_errno("evwheel: Reactor::add");
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = cookie(fd, slot.generation + 1);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int error = errno;
    slots_.release(fd);
    errno = error;
    throw_errno("evwheel: Reactor::add");
  }
  ++slot.generation;
  slot.handler = &handler;
}

void Reactor::modify(int fd, uint32_t events) {
  assert_in_loop_thread();
  FdSlot* slot = slots_.find(fd);
  if (!slot || !slot->handler) {
    errno = ENOENT;
    throw_errno("evwheel: Reactor::modify");
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = cookie(fd, slot->generation);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) < 0) throw_errno("evwheel: Reactor::modify");
}

void Reactor::remove(int fd) noexcept {
  assert_in_loop_thread();
  FdSlot* slot = slots_.find(fd);
  if (!slot || !slot->handler) return;
  // Events of this registration still in the batch find no handler; a new registration of the
  // same number gets a new generation, so they cannot match it either.
  slot->handler = nullptr;
  slots_.release(fd);
  // Fails only for a descriptor closed before its removal (EBADF), a bug in the caller: the
  // kernel dropped it from the epoll set already, so only the report is left to do.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr) < 0)
    log(LogLevel::warning, "fd %d: epoll_ctl(DEL): %s (closed before Reactor::remove?)", fd, std::strerror(errno));
}

bool Reactor::registered(int fd) const noexcept {
  const FdSlot* slot = slots_.find(fd);
  return slot != nullptr && slot->handler != nullptr;
}

uint64_t Reactor::generation(int fd) const noexcept {
  // peek(), not find(): a removed registration keeps its generation until the next add().
  const FdSlot* slot = slots_.peek(fd);
  return slot ? slot->generation : 0;
}

void Reactor::assert_in_loop_thread() const noexcept {
#ifndef NDEBUG
  if (in_loop_thread()) return;
  std::ostringstream message;
  message << "evwheel: a Reactor was used from thread " << std::this_thread::get_id()
          << ", but it belongs to thread " << owner_.load(std::memory_order_relaxed)
          << " (only post() and stop() may be called from other threads)\n";
  std::string text = message.str();
  [[maybe_unused]] auto written = ::write(2, text.data(), text.size());
  std::abort();
#endif
}

TimePoint Reactor::update_now() noexcept { return now_ = monotonic_now(); }

void Reactor::run() {
  while (!stopping_.load(std::memory_order_acquire)) run_once(Duration(-1));
  stopping_.store(false, std::memory_order_relaxed);
}

int Reactor::run_once(Duration max_wait) {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  // Letters left from the last pass, or a timer already due: look for events, don't sleep.
  int timeout = arm_timerfd() || mailbox_.holding() ? 0 : to_epoll_timeout(max_wait);
  int ready = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout);
  if (ready < 0 && errno != EINTR) log_and_throw_errno("evwheel: epoll_wait");
  update_now();
  int dispatched = 0;
  try {
    dispatched = dispatch(ready);
    run_timers();
    run_posted();
    deliver_mail();
  } catch (...) {
    // A handler or timer that throws leaves run_once() before run_posted(): tasks already
    // announced by a consumed wake-up must not wait for some unrelated event.  (A handler,
    // not a guard object: the path without an exception then costs nothing.)
    wake_if_posted();
    throw;
  }
  ++iterations_;
  return dispatched;
}

int Reactor::dispatch(int ready) {
  int dispatched = 0;
  for (int i = 0; i < ready; ++i) {
    uint64_t data = events_[static_cast<std::size_t>(i)].data.u64;
    auto fd = static_cast<int>(data & 0xffffffffu);
    FdSlot& slot = slots_.at(fd);  // it was registered, so its chunk exists
    if (!slot.handler || static_cast<uint32_t>(slot.generation) != static_cast<uint32_t>(data >> 32)) continue;
    slot.handler->on_io(events_[static_cast<std::size_t>(i)].events);
    ++dispatched;
  }
  return dispatched;
}

void Reactor::stop() noexcept {
  stopping_.store(true, std::memory_order_release);
  wake();
}

void Reactor::wake() noexcept {
  uint64_t one = 1;
  [[maybe_unused]] auto written = write(wake_fd_, &one, sizeof one);
}

void Reactor::post(Task task) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(task));
    wake = !wake_pending_.load(std::memory_order_relaxed);
    wake_pending_.store(true, std::memory_order_release);
  }
  if (wake) this->wake();
}

void Reactor::wake_if_posted() noexcept {
  std::lock_guard<std::mutex> lock(posted_mutex_);
  if (!posted_.empty() || mail_waiting_.load(std::memory_order_relaxed)) wake();
}

void Reactor::drain_wakeups() {
  uint64_t count;
  [[maybe_unused]] auto got = read(wake_fd_, &count, sizeof count);
}

void Reactor::on_timer_fd() {
  uint64_t expirations;
  [[maybe_unused]] auto got = read(timer_fd_, &expirations, sizeof expirations);
  armed_ = TimePoint::max();  // it fired: the next arm_timerfd() must set it again
}

void Reactor::run_posted() {
  // Most iterations have nothing posted: one load instead of a lock and an unlock.
  if (!wake_pending_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    running_.swap(posted_);
    wake_pending_.store(false, std::memory_order_relaxed);
  }
  // If a task throws, the ones after it go back to the front of the queue before the exception
  // leaves run_once(): nothing posted is lost.
  std::size_t next = 0;
  struct Requeue {
    Reactor& reactor;
    std::size_t& next;
    ~Requeue() {
      if (next < reactor.running_.size()) {
        std::lock_guard<std::mutex> lock(reactor.posted_mutex_);
        reactor.posted_.insert(reactor.posted_.begin(),
                               std::make_move_iterator(reactor.running_.begin() + static_cast<std::ptrdiff_t>(next)),
                               std::make_move_iterator(reactor.running_.end()));
        if (!reactor.wake_pending_.load(std::memory_order_relaxed)) {
          reactor.wake_pending_.store(true, std::memory_order_release);
          reactor.wake();
        }
      }
      reactor.running_.clear();
    }
  } requeue{*this, next};
  while (next < running_.size()) {
    Task& task = running_[next++];
    task();
  }
}

bool Reactor::mail(const Mailbox::Letter& letter) {
  bool was_empty = false;
  if (!mailbox_.put(letter, &was_empty)) return false;
  // One wake-up per batch: the first letter into an empty mailbox wakes the loop.
  if (was_empty) {
    mail_waiting_.store(true, std::memory_order_release);
    wake();
  }
  return true;
}

void Reactor::deliver_mail() {
  // Letters held from the last pass go first.  Otherwise a load before the exchange: its locked
  // write on every iteration would cost more than the check.
  if (!mailbox_.holding() &&
      (!mail_waiting_.load(std::memory_order_relaxed) || !mail_waiting_.exchange(false, std::memory_order_acquire)))
    return;
  mailbox_.deliver([this](const Mailbox::Letter& letter) {
    if (letter.receiver == kEveryReceiver) {
      // Indexing, not iterators: a receiver may add or remove receivers.
      for (std::size_t i = 0; i < receivers_.size(); ++i)
        if (receivers_[i]) receivers_[i]->receive(letter);
    } else if (letter.receiver < receivers_.size() && receivers_[letter.receiver]) {
      receivers_[letter.receiver]->receive(letter);
    }
  }, kLettersPerPass);
}

uint16_t Reactor::add_receiver(MessageReceiver& receiver) {
  assert_in_loop_thread();
  auto free = std::find(receivers_.begin(), receivers_.end(), nullptr);
  if (free != receivers_.end()) {
    *free = &receiver;
    return static_cast<uint16_t>(free - receivers_.begin());
  }
  if (receivers_.size() >= kEveryReceiver) throw std::length_error("evwheel: more than 65536 receivers on one reactor");
  receivers_.push_back(&receiver);
  return static_cast<uint16_t>(receivers_.size() - 1);
}

void Reactor::remove_receiver(uint16_t number) noexcept {
  assert_in_loop_thread();
  if (number < receivers_.size()) receivers_[number] = nullptr;
}

void Reactor::attach(TimerWheel& wheel) {
  assert_in_loop_thread();
  if (std::find(wheels_.begin(), wheels_.end(), &wheel) == wheels_.end()) wheels_.push_back(&wheel);
}

void Reactor::detach(TimerWheel& wheel) noexcept {
  assert_in_loop_thread();
  if (&wheel == &timers_) return;
  wheels_.erase(std::remove(wheels_.begin(), wheels_.end(), &wheel), wheels_.end());
}

void Reactor::run_timers() {
  // Indexing, not iterators: a callback may attach or detach a wheel.
  for (std::size_t i = 0; i < wheels_.size(); ++i) wheels_[i]->advance(now_);
}

bool Reactor::arm_timerfd() {
  TimePoint due = TimePoint::max();
  for (TimerWheel* wheel : wheels_) {
    if (auto next = wheel->next_due()) due = std::min(due, *next);
  }
  if (due <= now_) return true;  // already due: poll, don't sleep
  if (due == armed_) return false;
  itimerspec spec{};
  if (due != TimePoint::max()) {
    auto ns = due.time_since_epoch().count();
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) < 0)
    log_and_throw_errno("evwheel: timerfd_settime");
  armed_ = due;
  return false;
}

TimerId Reactor::add_timer(Duration delay, Duration period, Task task) {
  assert_in_loop_thread();
  TimerId id = next_timer_id_++;
  auto timer = std::make_unique<UserTimer>(*this, id, period, std::move(task));
  // A fresh clock read, not now(): called late in an iteration, the cached time would make
  // the timer fire early relative to the call.
  timers_.schedule(*timer, monotonic_now() + delay);
  user_timers_.emplace(id, std::move(timer));
  return id;
}

TimerId Reactor::run_after(Duration delay, Task task) {
  return add_timer(delay, Duration::zero(), std::move(task));
}

TimerId Reactor::run_every(Duration period, Task task) {
  if (period.count() <= 0) throw std::invalid_argument("evwheel: run_every period must be > 0");
  return add_timer(period, period, std::move(task));
}

bool Reactor::cancel(TimerId id) noexcept {
  assert_in_loop_thread();
  auto found = user_timers_.find(id);
  if (found == user_timers_.end()) return false;
  timers_.cancel(*found->second);
  if (id == firing_timer_) {
    firing_cancelled_ = true;  // erased once its callback returns
  } else {
    user_timers_.erase(found);
  }
  return true;
}

void Reactor::on_user_timer(TimerEntry& entry) {
  auto& timer = static_cast<UserTimer&>(entry);
  Reactor& reactor = timer.reactor;
  if (timer.period.count() == 0) {
    // Taken out of the map first: the task may cancel (a no-op now) or add timers freely.
    auto node = reactor.user_timers_.extract(timer.id);
    node.mapped()->task();
    return;
  }
  reactor.timers_.schedule(timer, reactor.now_ + timer.period);
  reactor.firing_timer_ = timer.id;
  reactor.firing_cancelled_ = false;
  struct Finish {
    Reactor& reactor;
    ~Finish() {
      if (reactor.firing_cancelled_) reactor.user_timers_.erase(reactor.firing_timer_);
      reactor.firing_timer_ = 0;
    }
  } finish{reactor};
  timer.task();
}

}  // namespace evwheel
