// floor_measure — measure_floor() (see floor.hpp): loopback TCP pairs in one process, one
// epoll instance watching every receiving end, and the two ways of moving a 4-byte message
// through them (batched rounds, and one message per epoll_wait).
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "floor.hpp"
#include "../common/system.hpp"

namespace bench {
namespace {

// epoll_wait's batch in the batched rounds: what an event loop takes per call (the Reactor's
// default max_events).
constexpr int kBatch = 1024;
// Descriptors left free besides the pairs: the listener, the epoll instance, stdio, and room
// for whatever the caller opens meanwhile.
constexpr long kSpareDescriptors = 16;
const char kWord[4] = {'p', 'i', 'n', 'g'};

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("floor: ") + what);
}

int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

long open_descriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return 0;
  long count = 0;
  while (dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.' && std::atoi(entry->d_name) != dirfd(dir)) ++count;
  closedir(dir);
  return count;
}

class Descriptor {
 public:
  explicit Descriptor(int fd = -1) noexcept : fd_(fd) {}
  Descriptor(Descriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Descriptor& operator=(Descriptor&&) = delete;
  ~Descriptor() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// Restores the thread's CPU set on the way out, so the caller (conns) keeps its own pinning.
class Pinning {
 public:
  explicit Pinning(int cpu) : pinned_(cpu >= 0) {
    if (!pinned_) return;
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) fail("sched_getaffinity");
    if (!sys::pin_to_cpu(cpu)) fail("sched_setaffinity");
  }
  ~Pinning() {
    if (pinned_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  Pinning(const Pinning&) = delete;
  Pinning& operator=(const Pinning&) = delete;

 private:
  bool pinned_;
  cpu_set_t saved_{};
};

void no_delay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
}

// `count` connected loopback pairs: senders[i] writes, receivers[i] (nonblocking, watched by
// `epoll` with data.u32 = i) reads.
struct Pairs {
  std::vector<Descriptor> senders;
  std::vector<Descriptor> receivers;
  Descriptor epoll;
};

Descriptor loopback_listener(sockaddr_in* address) {
  Descriptor listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) fail("socket");
  *address = sockaddr_in{};
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto* generic = reinterpret_cast<sockaddr*>(address);
  socklen_t length = sizeof *address;
  if (bind(listener.get(), generic, length) != 0) fail("bind");
  if (listen(listener.get(), 128) != 0) fail("listen");
  if (getsockname(listener.get(), generic, &length) != 0) fail("getsockname");
  return listener;
}

Pairs open_pairs(int count) {
  sockaddr_in address;
  Descriptor listener = loopback_listener(&address);
  Pairs pairs{{}, {}, Descriptor(epoll_create1(EPOLL_CLOEXEC))};
  if (pairs.epoll.get() < 0) fail("epoll_create1");
  pairs.senders.reserve(count);
  pairs.receivers.reserve(count);
  for (int i = 0; i < count; ++i) {
    // One connect and its accept at a time keeps the backlog at one, whatever the count.
    pairs.senders.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int sender = pairs.senders.back().get();
    if (sender < 0) fail("socket");
    if (connect(sender, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      fail("connect");
    pairs.receivers.emplace_back(
        accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    int receiver = pairs.receivers.back().get();
    if (receiver < 0) fail("accept4");
    no_delay(sender);
    no_delay(receiver);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = static_cast<uint32_t>(i);
    if (epoll_ctl(pairs.epoll.get(), EPOLL_CTL_ADD, receiver, &event) != 0) fail("epoll_ctl");
  }
  return pairs;
}

void send_word(const Descriptor& sender) {
  if (send(sender.get(), kWord, sizeof kWord, MSG_NOSIGNAL) != sizeof kWord) fail("send");
}

// Reads what the event's receiver holds; returns the bytes read.
std::size_t receive(const Pairs& pairs, const epoll_event& event) {
  char buffer[64];
  ssize_t got = recv(pairs.receivers[event.data.u32].get(), buffer, sizeof buffer, 0);
  if (got > 0) return static_cast<std::size_t>(got);
  if (got == 0) {
    errno = ECONNRESET;
    fail("recv: the sender closed");
  }
  if (errno == EAGAIN || errno == EINTR) return 0;
  fail("recv");
}

int wait_events(const Pairs& pairs, epoll_event* events, int capacity) {
  for (;;) {
    int ready = epoll_wait(pairs.epoll.get(), events, capacity, -1);
    if (ready >= 0) return ready;
    if (errno != EINTR) fail("epoll_wait");
  }
}

struct PhaseTimes {
  int64_t send_ns = 0;
  int64_t recv_ns = 0;
};

// One heartbeat round: a word on every sender, then epoll_wait + recv until all have arrived.
void batched_round(const Pairs& pairs, epoll_event* events, PhaseTimes* times) {
  int64_t start = thread_cpu_ns();
  for (const Descriptor& sender : pairs.senders) send_word(sender);
  int64_t sent = thread_cpu_ns();
  std::size_t pending = pairs.senders.size() * sizeof kWord;
  while (pending > 0) {
    int ready = wait_events(pairs, events, kBatch);
    for (int k = 0; k < ready; ++k) pending -= receive(pairs, events[k]);
  }
  int64_t received = thread_cpu_ns();
  times->send_ns += sent - start;
  times->recv_ns += received - sent;
}

// One message on pair i, waited for and read before the next is sent.
void unbatched_message(const Pairs& pairs, std::size_t i) {
  send_word(pairs.senders[i]);
  std::size_t pending = sizeof kWord;
  epoll_event event;
  while (pending > 0)
    if (wait_events(pairs, &event, 1) == 1) pending -= receive(pairs, event);
}

void measure_batched(const Pairs& pairs, double seconds, FloorResult* result) {
  std::vector<epoll_event> events(kBatch);
  PhaseTimes warm_up;
  batched_round(pairs, events.data(), &warm_up);  // first-use page faults and cache misses
  PhaseTimes times;
  uint64_t rounds = 0;
  const int64_t cpu_start = sys::process_cpu_ns();
  const int64_t end = sys::monotonic_ns() + static_cast<int64_t>(seconds * 1e9);
  do {
    batched_round(pairs, events.data(), &times);
    ++rounds;
  } while (sys::monotonic_ns() < end);
  const int64_t cpu = sys::process_cpu_ns() - cpu_start;
  result->messages = rounds * pairs.senders.size();
  const double messages = static_cast<double>(result->messages);
  result->us_per_message = static_cast<double>(cpu) / 1e3 / messages;
  result->send_us = static_cast<double>(times.send_ns) / 1e3 / messages;
  result->recv_us = static_cast<double>(times.recv_ns) / 1e3 / messages;
}

void measure_unbatched(const Pairs& pairs, double seconds, FloorResult* result) {
  // Reading the clock every message would add its own cost to each; every 256 it is noise.
  constexpr uint64_t kCheckEvery = 256;
  const std::size_t count = pairs.senders.size();
  for (std::size_t i = 0; i < count; ++i) unbatched_message(pairs, i);  // warm-up
  uint64_t messages = 0;
  const int64_t cpu_start = sys::process_cpu_ns();
  const int64_t end = sys::monotonic_ns() + static_cast<int64_t>(seconds * 1e9);
  do {
    for (uint64_t k = 0; k < kCheckEvery; ++k) unbatched_message(pairs, (messages + k) % count);
    messages += kCheckEvery;
  } while (sys::monotonic_ns() < end);
  const int64_t cpu = sys::process_cpu_ns() - cpu_start;
  result->unbatched_us_per_message = static_cast<double>(cpu) / 1e3 / static_cast<double>(messages);
}

}  // namespace

int floor_pair_limit() {
  long limit = sys::raise_nofile();
  if (limit < 0) return 0;
  long free = limit - open_descriptors() - kSpareDescriptors;
  return static_cast<int>(std::clamp(free / 2, 0L, long{1} << 30));
}

FloorResult measure_floor(int pairs, double seconds, int cpu) {
  if (pairs <= 0) throw std::invalid_argument("floor: pairs must be positive");
  if (!(seconds > 0)) throw std::invalid_argument("floor: seconds must be positive");
  const int usable = std::min(pairs, floor_pair_limit());
  if (usable <= 0) {
    errno = EMFILE;
    fail("no descriptors left for a pair");
  }
  Pinning pinning(cpu);
  FloorResult result;
  result.pairs = usable;
  Pairs opened = open_pairs(usable);
  measure_batched(opened, seconds * 2 / 3, &result);
  measure_unbatched(opened, seconds / 3, &result);
  return result;
}

}  // namespace bench
