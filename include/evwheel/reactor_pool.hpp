// reactor_pool — one Reactor per thread, typically one thread per core, each serving its own
// connections: "one loop per thread", with nothing shared on the hot path.
//
// The setup callback runs on each pool thread before its loop starts and builds that thread's
// service: usually an Endpoint and a Listener with reuse_port, so the kernel spreads new
// connections over the reactors (SO_REUSEPORT hashes each connection to one listener).  It
// registers them with the thread's Shutdown and returns whatever owns them; that object is
// destroyed on the same thread after its loop has ended, while the reactor is still alive.
// Setups run one after another in index order (each on its own thread), so a later one may use
// what an earlier one found out — the port reactor 0 was given, say.
//
// Threads are created with every signal blocked, so process-directed signals never land on a
// pool thread; read them with Signals (signals.hpp) on another reactor, or on one pool reactor
// after block_signals() in main().
//
// Across threads only post(), send(), broadcast(), shutdown() and stop() may be called; the
// reactors, like everything registered with them, belong to their threads.  Reactor i gets
// index i (ReactorOptions::index), which every ConnectionId made on it carries.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "evwheel/connection_id.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/shutdown.hpp"

namespace evwheel {

struct ReactorPoolOptions {
  // Threads, each with its own reactor; 0: one per CPU this process may run on.
  std::size_t reactors = 0;
  // Pin thread i to CPU cpus[i % cpus.size()]; empty: the CPUs this process may run on (its
  // affinity mask), in ascending order.  Without pinning the scheduler may move threads around.
  bool pin = false;
  std::vector<int> cpus;
  ReactorOptions reactor;
};

class ReactorPool {
 public:
  // Runs on pool thread `index` before its loop starts; returns the owner of what it built.
  using Setup = std::function<std::shared_ptr<void>(Reactor& reactor, Shutdown& shutdown, std::size_t index)>;

  // Starts the threads and returns once every setup has run.  If a thread cannot be pinned or
  // a setup throws, the threads already running are stopped and joined and the exception is
  // rethrown here.  Throws std::invalid_argument on bad options (a CPU out of range or not in
  // the process's affinity mask) or an empty setup.
  ReactorPool(ReactorPoolOptions options, Setup setup);
  ~ReactorPool();  // stop() and join()
  ReactorPool(const ReactorPool&) = delete;
  ReactorPool& operator=(const ReactorPool&) = delete;

  std::size_t size() const noexcept { return threads_.size(); }

  // Runs `task` on reactor `index`'s thread; tasks posted from one thread run in posting order.
  // Throws std::out_of_range for a bad index.  A task posted after that loop ended never runs.
  void post(std::size_t index, Reactor::Task task);

  // Sends `bytes` as one message to the connection `id` names, from any thread: the letter
  // goes to that reactor's mailbox (reactor.hpp) and is sent on its loop.  False when the id
  // names no reactor of this pool or the mailbox is full; a letter for a connection that has
  // closed by the time it is delivered is dropped and counted (EndpointStats::mail_dropped).
  bool send(const ConnectionId& id, std::string_view bytes);
  // Sends `bytes` to every open connection of every endpoint on every reactor (see
  // Endpoint::broadcast for connections that are behind); returns how many reactors took it.
  std::size_t broadcast(std::string_view bytes);

  // Graceful: every reactor runs its Shutdown (stop accepting, drain within `deadline`), and
  // each loop ends once its own drain is done.  Thread-safe; call join() to wait.
  void shutdown(Duration deadline);
  // Immediate: every loop ends after its current iteration; the setup's objects are then
  // destroyed (an Endpoint closes its connections with CloseReason::shutdown).  Thread-safe.
  void stop() noexcept;
  // Waits for every thread to end, then rethrows the first exception that ended a loop (a
  // timer or posted task that threw; the other loops keep running until stopped).
  // Idempotent; must not be called from a pool thread.
  void join();

 private:
  struct Slot;
  void start_thread(std::size_t index, int cpu, const Setup& setup);
  void run_thread(Slot& slot, const Setup& setup);
  void join_quietly() noexcept;

  ReactorPoolOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> threads_;
};

}  // namespace evwheel
