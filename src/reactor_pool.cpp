// reactor_pool — see include/evwheel/reactor_pool.hpp.
#include "evwheel/reactor_pool.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <cerrno>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

namespace evwheel {

struct ReactorPool::Slot {
  std::size_t index = 0;
  int cpu = -1;                        // -1: not pinned
  std::unique_ptr<Reactor> reactor;    // made on the thread, kept until the pool is destroyed
  std::unique_ptr<Shutdown> shutdown;
  std::exception_ptr failure;          // what ended the setup or the loop, if anything threw

  // Start-up handshake: the constructor waits for `started` before starting the next thread.
  std::mutex mutex;
  std::condition_variable cv;
  bool started = false;
};

namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) < 0)
    throw std::system_error(errno, std::generic_category(), "evwheel: sched_getaffinity");
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

// The CPU for each thread, or -1 each when not pinning.
std::vector<int> placement(const ReactorPoolOptions& options) {
  std::vector<int> allowed = allowed_cpus();
  std::size_t reactors = options.reactors ? options.reactors : allowed.size();
  if (!options.pin) return std::vector<int>(reactors, -1);
  std::vector<int> cpus = options.cpus.empty() ? allowed : options.cpus;
  for (int cpu : cpus) {
    bool ok = false;
    for (int a : allowed) ok = ok || a == cpu;
    if (!ok)
      throw std::invalid_argument("evwheel: ReactorPool cpu " + std::to_string(cpu) +
                                  " is not one this process may run on");
  }
  std::vector<int> result;
  for (std::size_t i = 0; i < reactors; ++i) result.push_back(cpus[i % cpus.size()]);
  return result;
}

void pin_calling_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0)  // pid 0: this thread only
    throw std::system_error(errno, std::generic_category(), "evwheel: sched_setaffinity");
}

// Blocks every signal for the guard's lifetime, so threads created meanwhile inherit a full mask.
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~AllSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace

ReactorPool::ReactorPool(ReactorPoolOptions options, Setup setup) : options_(std::move(options)) {
  if (!setup) throw std::invalid_argument("evwheel: ReactorPool needs a setup callback");
  std::vector<int> cpus = placement(options_);
  try {
    for (std::size_t i = 0; i < cpus.size(); ++i) start_thread(i, cpus[i], setup);
  } catch (...) {
    stop();
    join_quietly();
    throw;
  }
}

ReactorPool::~ReactorPool() {
  stop();
  join_quietly();
}

void ReactorPool::start_thread(std::size_t index, int cpu, const Setup& setup) {
  slots_.push_back(std::make_unique<Slot>());
  Slot& slot = *slots_.back();
  slot.index = index;
  slot.cpu = cpu;
  {
    AllSignalsBlocked blocked;
    threads_.emplace_back([this, &slot, &setup] { run_thread(slot, setup); });
  }
  std::unique_lock<std::mutex> lock(slot.mutex);
  slot.cv.wait(lock, [&] { return slot.started; });
  if (!slot.failure) return;
  std::exception_ptr failure = slot.failure;
  slot.failure = nullptr;  // the thread has stopped looking at it: it failed and is ending
  std::rethrow_exception(failure);
}

void ReactorPool::join_quietly() noexcept {
  try {
    join();
  } catch (...) {
    // A loop ended by an exception nobody asked join() about: nothing left to tell.
  }
}

void ReactorPool::run_thread(Slot& slot, const Setup& setup) {
  std::shared_ptr<void> service;
  bool failed;
  {
    std::lock_guard<std::mutex> lock(slot.mutex);
    try {
      if (slot.cpu >= 0) pin_calling_thread(slot.cpu);
      ReactorOptions reactor_options = options_.reactor;
      reactor_options.index = static_cast<uint16_t>(slot.index);
      slot.reactor = std::make_unique<Reactor>(reactor_options);
      slot.shutdown = std::make_unique<Shutdown>(*slot.reactor);
      service = setup(*slot.reactor, *slot.shutdown, slot.index);
    } catch (...) {
      slot.failure = std::current_exception();
    }
    failed = slot.failure != nullptr;
    slot.started = true;
  }
  slot.cv.notify_one();
  if (failed) return;
  try {
    slot.reactor->run();
  } catch (...) {
    slot.failure = std::current_exception();  // read by join() after this thread ends
  }
  service.reset();  // on this thread, with the reactor still alive
}

void ReactorPool::post(std::size_t index, Reactor::Task task) {
  if (index >= slots_.size()) throw std::out_of_range("evwheel: ReactorPool::post index out of range");
  slots_[index]->reactor->post(std::move(task));
}

bool ReactorPool::send(const ConnectionId& id, std::string_view bytes) {
  if (id.reactor >= slots_.size() || !slots_[id.reactor]->reactor) return false;
  return slots_[id.reactor]->reactor->mail({id.endpoint, Mailbox::Target::one, id, bytes});
}

std::size_t ReactorPool::broadcast(std::string_view bytes) {
  std::size_t queued = 0;
  for (auto& slot : slots_)
    if (slot->reactor && slot->reactor->mail({Reactor::kEveryReceiver, Mailbox::Target::all, {}, bytes})) ++queued;
  return queued;
}

void ReactorPool::shutdown(Duration deadline) {
  for (auto& owned : slots_) {
    Slot* slot = owned.get();
    if (!slot->reactor) continue;  // its setup failed
    slot->reactor->post([slot, deadline] {
      slot->shutdown->start(deadline, [slot] { slot->reactor->stop(); });
    });
  }
}

void ReactorPool::stop() noexcept {
  for (auto& slot : slots_)
    if (slot->reactor) slot->reactor->stop();
}

void ReactorPool::join() {
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
  for (auto& slot : slots_) {
    if (!slot->failure) continue;
    std::exception_ptr failure = slot->failure;
    slot->failure = nullptr;
    std::rethrow_exception(failure);
  }
}

}  // namespace evwheel
