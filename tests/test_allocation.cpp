// The hot path allocates nothing: a replacement of the global operator new/delete counts the
// allocations made while a window is open, and each test opens one over a steady state — timer
// wheel churn, reactor dispatch and timerfd re-arming, heartbeat pings and pongs over 200
// loopback connections (framed and seed), small data frames echoed back and forth, and
// connections accepted through the PROXY protocol gate (headers whole, and split over reads).
//
// The replacement below serves the whole test binary (every tests/*.cpp is linked into one),
// so it is a complete one (plain, array, sized, aligned and nothrow forms) that does exactly
// what the default does — malloc/free and the new_handler loop — and only counts, on this
// thread, while `counting` is set.  Counted allocations keep their call stacks (backtrace(),
// which allocates nothing once loaded), and a failing test prints them resolved to function and
// file:line by addr2line (binutils; without it, as raw "binary(+0x...)" frames).
//
// Not counted: Buffer's own std::malloc (buffer growth).  It only runs on a buffer taken from
// an endpoint's BufferPool — for a frame split across reads or output the kernel did not take
// at once — and an empty pool's acquire() is a `new Buffer`, which is counted.  In these tests
// no buffer is taken at all (under gdb, BufferPool::acquire is never called, and malloc is
// never called inside a window), so that path is not what they measure.
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <execinfo.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "evwheel/codec.hpp"
#include "evwheel/connection.hpp"
#include "evwheel/connector.hpp"
#include "evwheel/endpoint.hpp"
#include "evwheel/listener.hpp"
#include "evwheel/proxy_protocol.hpp"
#include "evwheel/reactor.hpp"
#include "evwheel/timer_wheel.hpp"
#include "fd_count.hpp"
#include "loopback.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZED_ALLOCATOR 1
#endif
#endif
#ifndef SANITIZED_ALLOCATOR
#define SANITIZED_ALLOCATOR 0
#endif

// ------------------------------------------------------------------------------------------
// The counting hook.

namespace {

std::atomic<std::size_t> allocations{0};    // operator new calls while counting
std::atomic<std::size_t> deallocations{0};  // operator delete calls (non-null) while counting
thread_local bool counting = false;

// The first kSites distinct call stacks of a window, each with how often it allocated.  Kept
// by the counting thread only: one window at a time.
constexpr int kSites = 4;
constexpr int kFrames = 32;
struct Site {
  std::size_t size;   // of its first allocation
  std::size_t count;
  int depth;
  void* frames[kFrames];
};
Site sites[kSites];
int sites_kept = 0;

void note_allocation(std::size_t size) noexcept {
  if (!counting) return;
  counting = false;  // backtrace() must not count (nor recurse into) itself
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* frames[kFrames];
  int depth = backtrace(frames, kFrames);
  bool known = false;
  for (int i = 0; i < sites_kept && !known; ++i) {
    known = sites[i].depth == depth && std::memcmp(sites[i].frames, frames, sizeof(void*) * static_cast<std::size_t>(depth)) == 0;
    if (known) ++sites[i].count;
  }
  if (!known && sites_kept < kSites) {
    Site& site = sites[sites_kept++];
    site.size = size;
    site.count = 1;
    site.depth = depth;
    std::memcpy(site.frames, frames, sizeof frames);
  }
  counting = true;
}

void note_deallocation(void* pointer) noexcept {
  if (counting && pointer) deallocations.fetch_add(1, std::memory_order_relaxed);
}

// What the default operator new does: malloc (size 0 asks for 1), and on failure call the
// new_handler and retry, or throw std::bad_alloc when there is none.
void* allocate(std::size_t size) {
  if (size == 0) size = 1;
  for (;;) {
    if (void* pointer = std::malloc(size)) return pointer;
    std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
  }
}

void* allocate_aligned(std::size_t size, std::align_val_t align) {
  auto alignment = static_cast<std::size_t>(align);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw std::bad_alloc();
  if (alignment < sizeof(void*)) alignment = sizeof(void*);  // posix_memalign's minimum
  if (size == 0) size = 1;
  for (;;) {
    void* pointer = nullptr;
    if (::posix_memalign(&pointer, alignment, size) == 0) return pointer;
    std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
  }
}

}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  note_allocation(size);
  return allocate(size);
}
[[gnu::noinline]] void* operator new[](std::size_t size) {
  note_allocation(size);
  return allocate(size);
}
[[gnu::noinline]] void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  note_allocation(size);
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  note_allocation(size);
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void* operator new(std::size_t size, std::align_val_t align) {
  note_allocation(size);
  return allocate_aligned(size, align);
}
[[gnu::noinline]] void* operator new[](std::size_t size, std::align_val_t align) {
  note_allocation(size);
  return allocate_aligned(size, align);
}
[[gnu::noinline]] void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  note_allocation(size);
  try {
    return allocate_aligned(size, align);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  note_allocation(size);
  try {
    return allocate_aligned(size, align);
  } catch (...) {
    return nullptr;
  }
}

[[gnu::noinline]] void operator delete(void* pointer) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete(void* pointer, std::size_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer, std::size_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete(void* pointer, const std::nothrow_t&) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer, const std::nothrow_t&) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete(void* pointer, std::align_val_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer, std::align_val_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete(void* pointer, std::size_t, std::align_val_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer, std::size_t, std::align_val_t) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete(void* pointer, std::align_val_t, const std::nothrow_t&) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}
[[gnu::noinline]] void operator delete[](void* pointer, std::align_val_t, const std::nothrow_t&) noexcept {
  note_deallocation(pointer);
  std::free(pointer);
}

namespace {

using namespace std::chrono_literals;
using namespace evwheel;
using Clock = std::chrono::steady_clock;

struct Counts {
  std::size_t allocations;
  std::size_t deallocations;
};

// Opens a counting window on this thread (no other may be open).
void start_counting() {
  void* warm[2];
  backtrace(warm, 2);  // the first call loads the unwinder: not inside the window
  allocations.store(0);
  deallocations.store(0);
  sites_kept = 0;
  counting = true;
}

Counts stop_counting() {
  counting = false;
  return {allocations.load(), deallocations.load()};
}

// One call stack as text: frames in this executable through addr2line (function, file:line,
// inlining), the others as backtrace_symbols() has them.  Failure reporting only.
std::string describe(const Site& site) {
  char** symbols = backtrace_symbols(site.frames, site.depth);
  Dl_info self{};
  char exe[4096] = {};
  bool resolve = dladdr(reinterpret_cast<void*>(&describe), &self) != 0 &&
                 ::readlink("/proc/self/exe", exe, sizeof exe - 1) > 0;
  std::vector<bool> ours(static_cast<std::size_t>(site.depth));
  std::string command = std::string("addr2line -Cfpi -e '") + exe + "'";
  for (int f = 0; f < site.depth; ++f) {
    Dl_info info{};
    if (resolve && dladdr(site.frames[f], &info) && info.dli_fbase == self.dli_fbase) {
      ours[static_cast<std::size_t>(f)] = true;
      // A return address, less one: the line of the call, not of the next statement.
      auto offset = reinterpret_cast<std::uintptr_t>(site.frames[f]) - reinterpret_cast<std::uintptr_t>(self.dli_fbase) - 1;
      char hex[32];
      std::snprintf(hex, sizeof hex, " 0x%jx", static_cast<uintmax_t>(offset));
      command += hex;
    }
  }
  // One record per address: a line, then its " (inlined by) ..." lines.
  std::vector<std::string> records;
  if (resolve) {
    if (FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r")) {
      char line[4096];
      while (std::fgets(line, sizeof line, pipe)) {
        if (std::strncmp(line, " (inlined by)", 13) == 0 && !records.empty()) records.back() += std::string("      ") + line;
        else records.emplace_back(line);
      }
      ::pclose(pipe);
    }
  }
  bool resolved = records.size() == static_cast<std::size_t>(std::count(ours.begin(), ours.end(), true));
  std::string text;
  std::size_t next = 0;
  for (int f = 0; f < site.depth; ++f) {
    text += "    ";
    if (resolved && ours[static_cast<std::size_t>(f)]) {
      text += records[next++];
    } else {
      text += symbols ? symbols[f] : "?";
      text += '\n';
    }
  }
  std::free(symbols);
  return text;
}

// The call stacks recorded in the last window, for failure messages.
std::string allocation_sites() {
  if (sites_kept == 0) return "no allocation recorded";
  std::string text = "allocating call stacks (the first " + std::to_string(kSites) + " distinct ones):\n";
  for (int i = 0; i < sites_kept; ++i) {
    text += "stack " + std::to_string(i + 1) + ": " + std::to_string(sites[i].count) + " allocation(s), the first of " +
            std::to_string(sites[i].size) + " bytes\n" + describe(sites[i]);
  }
  return text;
}

// Keeps the compiler from eliding a new/delete pair in the hook's own test.
template <class T>
void escape(T* pointer) {
  asm volatile("" : : "g"(pointer) : "memory");
}

// Runs `reactor` until `end`, letting only its own descriptors (timerfd included) wake it.
void run_until(Reactor& reactor, Clock::time_point end) {
  while (Clock::now() < end) reactor.run_once(1s);
}

}  // namespace

TEST_CASE("the allocation hook counts every operator new form, only while counting and only on its thread") {
  start_counting();
  int* one = new int(1);
  escape(one);
  int* many = new int[4];
  escape(many);
  struct alignas(64) Wide {
    char bytes[64];
  };
  Wide* wide = new Wide;
  escape(wide);
  bool aligned = reinterpret_cast<std::uintptr_t>(wide) % 64 == 0;
  Wide* wides = new Wide[2];
  escape(wides);
  int* quiet = new (std::nothrow) int(2);
  escape(quiet);
  Wide* quiet_wide = new (std::nothrow) Wide;
  escape(quiet_wide);
  std::vector<int> grown(100);
  escape(grown.data());
  delete one;
  delete[] many;
  delete wide;
  delete[] wides;
  delete quiet;
  delete quiet_wide;
  Counts counted = stop_counting();
  CHECK(counted.allocations == 7);
  CHECK(counted.deallocations == 6);
  CHECK(sites_kept == kSites);  // seven distinct call stacks, the first four kept
  CHECK(aligned);

  // One call stack allocating three times is one site.
  start_counting();
  volatile int times = 3;  // an unknown bound: the loop cannot be unrolled into three sites
  for (int i = 0; i < times; ++i) {
    int* again = new int(i);
    escape(again);
    delete again;
  }
  Counts repeated = stop_counting();
  CHECK(repeated.allocations == 3);
  CHECK(sites_kept == 1);
  CHECK(sites[0].count == 3);
  CHECK(allocation_sites().find(".cpp:") != std::string::npos);  // resolved by addr2line

  // Not counting: nothing is recorded.
  std::vector<int> after(100);
  escape(after.data());
  CHECK(allocations.load() == 3);

  // Another thread's allocations are not counted (nor is this thread's std::thread, made first).
  std::atomic<bool> go{false};
  std::thread other([&go] {
    while (!go.load()) std::this_thread::yield();
    std::vector<int> elsewhere(100);
    escape(elsewhere.data());
  });
  start_counting();
  go.store(true);
  other.join();
  Counts threaded = stop_counting();
  CHECK(threaded.allocations == 0);

  // Library code links against the same replacement: a one-shot timer allocates (documented).
  Reactor reactor;
  start_counting();
  TimerId id = reactor.run_after(1h, [] {});
  Counts timer = stop_counting();
  CHECK(timer.allocations > 0);
  reactor.cancel(id);
}

TEST_CASE("the allocation hook behaves like the default operator new: size 0, new_handler, bad_alloc") {
  void* zero = ::operator new(0);
  void* zero_too = ::operator new(0);
  CHECK(zero != nullptr);
  CHECK(zero != zero_too);
  ::operator delete(zero);
  ::operator delete(zero_too);

#if !SANITIZED_ALLOCATOR  // sanitizer allocators abort on impossible sizes instead of failing
  static int handler_calls;
  handler_calls = 0;
  std::new_handler previous = std::set_new_handler([] {
    ++handler_calls;
    std::set_new_handler(nullptr);  // the next failure throws
  });
  const std::size_t impossible = static_cast<std::size_t>(-1) / 2;
  CHECK_THROWS_AS(static_cast<void>(::operator new(impossible)), std::bad_alloc);
  CHECK(handler_calls == 1);
  std::set_new_handler(previous);
  CHECK(::operator new(impossible, std::nothrow) == nullptr);
  CHECK(::operator new(impossible, std::align_val_t{64}, std::nothrow) == nullptr);
  CHECK_THROWS_AS(static_cast<void>(::operator new[](impossible, std::align_val_t{64})), std::bad_alloc);
#else
  MESSAGE("sanitizer build: the impossible-size checks (new_handler, bad_alloc, nothrow) are skipped, "
          "the sanitizer's malloc aborts on such a size instead of returning null");
#endif
}

// ------------------------------------------------------------------------------------------
// 1. The timer wheel.

namespace {

struct Churn;

struct ChurnEntry : TimerEntry {
  ChurnEntry() : TimerEntry(&ChurnEntry::expire) {}
  static void expire(TimerEntry& entry);
  Churn* churn = nullptr;
};

// 10k entries scheduled at random delays from a tick to past level 2 (past the top level of a
// two-level wheel, so its overflow list is used); the loop schedules, cancels and touches
// entries while time advances, sometimes by a big jump (catch-up), and callbacks re-arm
// themselves or cancel another entry.
struct Churn {
  static constexpr std::size_t kEntries = 10'000;
  TimerWheel wheel;
  std::unique_ptr<ChurnEntry[]> entries{new ChurnEntry[kEntries]};
  uint64_t state = 0x9e3779b97f4a7c15u;
  TimePoint now{};
  long fired = 0, early = 0, ops = 0, cancels = 0, touches = 0, rearmed = 0;

  explicit Churn(TimerWheelOptions options) : wheel(TimePoint{}, options) {
    for (std::size_t i = 0; i < kEntries; ++i) {
      entries[i].churn = this;
      wheel.schedule(entries[i], now + delay());
    }
  }
  uint64_t random() noexcept {  // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  ChurnEntry& any() noexcept { return entries[random() % kEntries]; }
  Duration delay() noexcept {
    uint64_t kind = random() % 10;
    uint64_t span = kind < 6 ? 128 : kind < 9 ? 8192 : uint64_t{1} << 20;
    return wheel.tick() * static_cast<int64_t>(random() % span);
  }
  void step(int operations, int ticks) {
    for (int i = 0; i < operations; ++i) {
      ChurnEntry& entry = any();
      ++ops;
      switch (random() % 4) {
        case 0: wheel.schedule(entry, now + delay()); break;
        case 1: wheel.cancel(entry); ++cancels; break;
        case 2: wheel.touch(entry, entry.scheduled() ? entry.deadline() + delay() : now + delay()); ++touches; break;
        case 3: wheel.touch(entry, now + delay()); ++touches; break;  // earlier or later
      }
    }
    now += wheel.tick() * ticks;
    wheel.advance(now);
  }
};

void ChurnEntry::expire(TimerEntry& entry) {
  auto& self = static_cast<ChurnEntry&>(entry);
  Churn& churn = *self.churn;
  ++churn.fired;
  if (churn.wheel.now() < self.deadline()) ++churn.early;
  switch (churn.random() % 4) {
    case 0:
    case 1: churn.wheel.schedule(self, churn.now + churn.delay()); ++churn.rearmed; break;
    case 2: churn.wheel.cancel(churn.any()); ++churn.cancels; break;
    default: break;  // stays unscheduled until the loop picks it
  }
}

}  // namespace

TEST_CASE("a timer wheel with 10k entries schedules, cancels, touches and advances without allocating") {
  for (unsigned levels : {TimerWheel::kDefaultLevels, 2u}) {
    CAPTURE(levels);
    Churn churn(TimerWheelOptions{1ms, levels});
    for (int s = 0; s < 200; ++s) churn.step(25, 1);  // running: entries firing, re-filed
    long fired_before = churn.fired, ops_before = churn.ops;

    start_counting();
    for (int s = 0; s < 4000; ++s) churn.step(25, s % 1000 == 999 ? 20'000 : 1 + s % 3);
    Counts counted = stop_counting();

    CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
    CHECK(counted.deallocations == 0);
    CHECK(churn.ops - ops_before == 100'000);
    CHECK(churn.fired - fired_before > 20'000);
    CHECK(churn.rearmed > 10'000);
    CHECK(churn.cancels > 10'000);
    CHECK(churn.touches > 40'000);
    CHECK(churn.early == 0);
  }
}

// ------------------------------------------------------------------------------------------
// 2. The reactor on its own: descriptor events, a repeating timer, the timerfd re-armed.

namespace {

struct EventReader final : IoHandler {
  int fd = -1;
  long events = 0;
  void on_io(uint32_t) override {
    uint64_t value;
    if (::read(fd, &value, sizeof value) == sizeof value) ++events;
  }
};

}  // namespace

TEST_CASE("reactor dispatch, a repeating timer and timerfd re-arming allocate nothing") {
  std::size_t fds_before = open_fd_count();
  {
    EventReader reader;
    reader.fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(reader.fd >= 0);
    {
      Reactor reactor;
      reactor.add(reader.fd, EPOLLIN, reader);
      long ticks = 0;
      // Every firing makes the eventfd readable: one descriptor event per timer event.
      reactor.run_every(2ms, [&ticks, &reader] {
        ++ticks;
        uint64_t one = 1;
        [[maybe_unused]] auto written = ::write(reader.fd, &one, sizeof one);
      });
      run_until(reactor, Clock::now() + 20ms);  // warm-up
      long ticks_before = ticks, events_before = reader.events;
      uint64_t iterations_before = reactor.iterations();

      // Until 20 ticks (40 ms when the machine is idle).  The loop waits up to 1 s per
      // iteration, so only the re-armed timerfd can wake it often enough to get there within
      // the deadline, which is generous only so that a loaded machine does not fail the test.
      auto enough = [&] {
        return ticks - ticks_before >= 20 && reader.events - events_before >= 20 &&
               reactor.iterations() - iterations_before >= 40;
      };
      const Clock::time_point deadline = Clock::now() + 5s;
      start_counting();
      while (!enough() && Clock::now() < deadline) reactor.run_once(1s);
      Counts counted = stop_counting();

      CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
      CHECK(counted.deallocations == 0);
      CHECK(ticks - ticks_before >= 20);
      CHECK(reader.events - events_before >= 20);
      CHECK(reactor.iterations() - iterations_before >= 40);
      reactor.remove(reader.fd);
    }
    ::close(reader.fd);
  }
  CHECK(open_fd_count() == fds_before);
}

// ------------------------------------------------------------------------------------------
// 3 and 4. Connections: a server and 200 Connector-made clients in one reactor.

namespace {

constexpr std::size_t kConnections = 200;
// A pinging side closes a peer whose ping stays unanswered for I - P, so that gap must outlast
// the loop stalls of a loaded machine or a sanitizer build (200 connections in one process);
// with one ping outstanding at a time, P bounds how many round trips the checks can expect.
constexpr Duration kInterval = 20ms;  // P
constexpr Duration kIdle = 1s;        // I

// Counts what happens, allocation-free; the server side echoes data frames.
struct Tally final : ConnectionHandler {
  bool echo = false;
  std::string_view expected;  // what data frames must carry (the client side checks)
  std::size_t opens = 0, closes = 0, messages = 0, mismatches = 0, refused = 0;
  void on_open(Connection&) override { ++opens; }
  void on_close(Connection&, CloseReason, int) override { ++closes; }
  void on_message(Connection& connection, std::string_view message) override {
    ++messages;
    if (!expected.empty() && message != expected) ++mismatches;
    if (echo && !connection.send(message)) ++refused;
  }
};

EndpointOptions mesh_options(Side side, std::shared_ptr<const Codec> codec) {
  EndpointOptions options = loopback::options(side, kInterval, kIdle, PingMode::both);
  options.codec = std::move(codec);
  return options;
}

// Members in construction order; destruction closes the clients first, then the server.
struct Mesh {
  Reactor reactor;
  Tally server, client;
  Endpoint server_ep;
  Endpoint client_ep;
  Listener listener;
  std::vector<std::unique_ptr<Connector>> connectors;

  explicit Mesh(const std::shared_ptr<const Codec>& codec)
      : server_ep(reactor, server, mesh_options(Side::server, codec)),
        client_ep(reactor, client, mesh_options(Side::client, codec)),
        listener(server_ep, ListenerOptions{}) {
    server.echo = true;
    ConnectorOptions options;
    options.address = "127.0.0.1:" + std::to_string(listener.port());
    for (std::size_t i = 0; i < kConnections; ++i) {
      connectors.push_back(std::make_unique<Connector>(client_ep, options));
      connectors.back()->start();
    }
  }
  bool all_open() const {
    if (server_ep.size() != kConnections || client_ep.size() != kConnections) return false;
    for (const auto& connector : connectors)
      if (!connector->connection()) return false;
    return true;
  }
  // Everything open, then a few intervals with pings flowing.
  bool warm_up() {
    if (!loopback::pump_until(reactor, [&] { return all_open(); })) return false;
    run_until(reactor, Clock::now() + 10 * kInterval);
    return all_open() && server.closes == 0 && client.closes == 0;
  }
};

void heartbeat_without_allocating(const std::shared_ptr<const Codec>& codec) {
  std::size_t fds_before = open_fd_count();
  {
    Mesh mesh(codec);
    REQUIRE(mesh.warm_up());
    HeartbeatStats server_before = mesh.server_ep.heartbeat_stats();
    HeartbeatStats client_before = mesh.client_ep.heartbeat_stats();

    // Until every connection has pinged, been answered and answered 5 times each way (a few
    // hundred ms when the machine is idle; the deadline is for a loaded one).
    const HeartbeatStats& server = mesh.server_ep.heartbeat_stats();
    const HeartbeatStats& client = mesh.client_ep.heartbeat_stats();
    auto enough = [&] {
      const uint64_t want = kConnections * 5;
      return server.pings_sent - server_before.pings_sent >= want &&
             server.pongs_received - server_before.pongs_received >= want &&
             client.pings_sent - client_before.pings_sent >= want &&
             client.pongs_received - client_before.pongs_received >= want &&
             client.pings_answered - client_before.pings_answered >= want &&
             server.pings_answered - server_before.pings_answered >= want;
    };
    const Clock::time_point deadline = Clock::now() + 10s;
    start_counting();
    while (!enough() && Clock::now() < deadline) mesh.reactor.run_once(1s);
    Counts counted = stop_counting();

    CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
    CHECK(counted.deallocations == 0);
    // Not vacuous: pings went both ways and were answered, and nobody was closed.
    CHECK(server.pings_sent - server_before.pings_sent >= kConnections * 5);
    CHECK(server.pongs_received - server_before.pongs_received >= kConnections * 5);
    CHECK(client.pings_sent - client_before.pings_sent >= kConnections * 5);
    CHECK(client.pongs_received - client_before.pongs_received >= kConnections * 5);
    CHECK(client.pings_answered - client_before.pings_answered >= kConnections * 5);
    CHECK(server.pings_answered - server_before.pings_answered >= kConnections * 5);
    CHECK(server.protocol_errors + client.protocol_errors == 0);
    CHECK(mesh.all_open());
    CHECK(mesh.server.closes + mesh.client.closes == 0);
  }
  CHECK(open_fd_count() == fds_before);
}

}  // namespace

TEST_CASE("heartbeat pings and pongs over 200 open connections allocate nothing (framed codec)") {
  heartbeat_without_allocating(std::make_shared<FramedCodec>());
}

TEST_CASE("heartbeat pings and pongs over 200 open connections allocate nothing (seed codec)") {
  heartbeat_without_allocating(std::make_shared<SeedCodec>());
}

TEST_CASE("receiving small data frames and echoing them with Connection::send allocates nothing") {
  std::size_t fds_before = open_fd_count();
  {
    Mesh mesh(std::make_shared<FramedCodec>());
    REQUIRE(mesh.warm_up());
    char payload[32];
    std::memset(payload, 'x', sizeof payload);
    mesh.client.expected = std::string_view(payload, sizeof payload);
    long unsent = 0, queued = 0;

    // One round: every client sends one frame; the server echoes each from on_message.
    auto round = [&](int number) {
      std::memcpy(payload, &number, sizeof number);
      std::size_t target = mesh.client.messages + kConnections;
      for (const auto& connector : mesh.connectors) {
        Connection* connection = connector->connection();
        if (!connection || !connection->send(std::string_view(payload, sizeof payload))) ++unsent;
        else if (connection->queued() != 0) ++queued;  // the kernel did not take it at once
      }
      Clock::time_point deadline = Clock::now() + 5s;
      while (mesh.client.messages < target && Clock::now() < deadline) mesh.reactor.run_once(1s);
    };
    for (int r = 0; r < 5; ++r) round(r);  // warm-up of the data path
    std::size_t server_before = mesh.server.messages, client_before = mesh.client.messages;
    uint64_t pings_before = mesh.server_ep.heartbeat_stats().pings_sent;

    constexpr int kRounds = 20;  // 4000 frames each way
    start_counting();
    for (int r = 0; r < kRounds; ++r) round(1000 + r);
    Counts counted = stop_counting();

    CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
    CHECK(counted.deallocations == 0);
    CHECK(mesh.server.messages - server_before == kConnections * kRounds);
    CHECK(mesh.client.messages - client_before == kConnections * kRounds);
    CHECK(unsent == 0);
    CHECK(queued == 0);
    CHECK(mesh.server.refused == 0);
    CHECK(mesh.client.mismatches == 0);
    CHECK(mesh.server_ep.heartbeat_stats().pings_sent > pings_before);  // pings interleaved
    CHECK(mesh.all_open());
  }
  CHECK(open_fd_count() == fds_before);
}

// ------------------------------------------------------------------------------------------
// 5. Accepting through the PROXY protocol: the gate's slots, timers, the header read and
// Endpoint::adopt_proxied, once the tables cover the descriptor numbers and the waiting peak.

namespace {

// Opens `count` raw clients that each send `bytes` (a header and a data frame), waits until the
// server took every message, then closes them and waits until the server closed them all.
// With `pieces` > 1 each client writes its bytes in that many parts (the first ends inside the
// header), and the loop runs between parts: each socket then waits in the gate — registered
// with epoll, a timer on the wheel — and its header is read over several wake-ups.
bool proxied_round(Reactor& reactor, Listener& listener, Endpoint& endpoint, Tally& server, std::size_t count,
                   std::string_view bytes, int* fds, std::size_t pieces = 1) {
  std::size_t messages = server.messages + count;
  std::size_t waiting_peak = 0;
  auto piece = [&](std::size_t k) { return bytes.substr(bytes.size() * k / pieces, bytes.size() * (k + 1) / pieces - bytes.size() * k / pieces); };
  for (std::size_t i = 0; i < count; ++i) {
    fds[i] = loopback::raw_connect(listener.port());
    if (fds[i] < 0 || !loopback::write_all(fds[i], piece(0))) return false;
  }
  if (pieces > 1) {
    if (!loopback::pump_until(reactor, [&] { return listener.awaiting_header() == count; })) return false;
    waiting_peak = listener.awaiting_header();
    for (std::size_t k = 1; k < pieces; ++k) {
      for (std::size_t i = 0; i < count; ++i)
        if (!loopback::write_all(fds[i], piece(k))) return false;
      reactor.run_once(Duration::zero());  // the bytes are in the sockets: each gets one look
    }
  }
  bool served = loopback::pump_until(reactor, [&] { return server.messages == messages; });
  for (std::size_t i = 0; i < count; ++i) ::close(fds[i]);
  return loopback::pump_until(reactor, [&] { return endpoint.size() == 0; }) && served &&
         (pieces == 1 || waiting_peak == count);
}

// A listener taking PROXY headers, its endpoint and what it served.
struct Gated {
  Reactor reactor;
  Tally server;
  Endpoint endpoint{reactor, server, loopback::options(Side::server, 60s, 120s)};
  Listener listener{endpoint, [] {
                      ListenerOptions options;
                      options.proxy_protocol = ProxyProtocol::any;
                      return options;
                    }()};
};

const std::string kProxied = "PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n" + loopback::frame(FrameType::data, "hello");

}  // namespace

TEST_CASE("accepting connections through the PROXY protocol gate allocates nothing once warm") {
  std::size_t fds_before = open_fd_count();
  {
    Gated gated;
    // Fewer than one gate chunk (64) per round; the warm-up uses twice the descriptor numbers,
    // so the measured round's, whatever their order, are already covered.
    constexpr std::size_t kClients = 50;
    int fds[2 * kClients];
    REQUIRE(proxied_round(gated.reactor, gated.listener, gated.endpoint, gated.server, 2 * kClients, kProxied, fds));

    start_counting();
    bool served = proxied_round(gated.reactor, gated.listener, gated.endpoint, gated.server, kClients, kProxied, fds);
    Counts counted = stop_counting();

    CHECK(served);
    CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
    CHECK(counted.deallocations == 0);
    CHECK(gated.server.opens == 3 * kClients);
    CHECK(gated.server.messages == 3 * kClients);
    CHECK(gated.listener.stats().accepted == 3 * kClients);
    CHECK(gated.listener.awaiting_header() == 0);
  }
  CHECK(open_fd_count() == fds_before);
}

TEST_CASE("a PROXY header split over several reads (an epoll registration and a wheel timer each) allocates nothing once warm") {
  std::size_t fds_before = open_fd_count();
  {
    Gated gated;
    constexpr std::size_t kClients = 50, kPieces = 3;
    int fds[2 * kClients];
    REQUIRE(proxied_round(gated.reactor, gated.listener, gated.endpoint, gated.server, 2 * kClients, kProxied, fds, kPieces));

    start_counting();
    bool served = proxied_round(gated.reactor, gated.listener, gated.endpoint, gated.server, kClients, kProxied, fds, kPieces);
    Counts counted = stop_counting();

    CHECK(served);  // every socket waited in the gate, then was served
    CHECK_MESSAGE(counted.allocations == 0, allocation_sites());
    CHECK(counted.deallocations == 0);
    CHECK(gated.server.messages == 3 * kClients);
    CHECK(gated.listener.stats().accepted == 3 * kClients);
    CHECK(gated.listener.awaiting_header() == 0);
    uint64_t refused = 0;
    for (uint64_t n : gated.listener.stats().proxy_failures) refused += n;
    CHECK(refused == 0);
  }
  CHECK(open_fd_count() == fds_before);
}
