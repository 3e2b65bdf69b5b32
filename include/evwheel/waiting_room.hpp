// waiting_room — accepted sockets that must wait for something before they become connections
// (a PROXY header, a WebSocket handshake): the slots the gates keep them in.
//
// Slots come in chunks of 64 that never move (epoll and the reactor's wheel point into them)
// and are kept for reuse on a free list, so once the chunks cover the most sockets ever
// waiting at once, a waiting socket costs no allocation.  A socket that has to wait is
// registered edge-triggered (one wake-up per piece that arrives, none while idle) and timed
// on the reactor's wheel; most never wait, as their sender writes at once.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <memory>
#include <system_error>
#include <vector>

#include "evwheel/reactor.hpp"
#include "evwheel/timer_wheel.hpp"

namespace evwheel {

// Closes `fd` with a reset (SO_LINGER 0): the peer learns at once, and no TIME_WAIT is left.
inline void reset_close(int fd) noexcept {
  linger abort{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  ::close(fd);
}

// What every slot is: a registration and a deadline for one socket.  A gate's slot type
// derives from it, adding what it keeps per socket and handling on_io and the deadline.
struct WaitingSocket : IoHandler, TimerEntry {
  explicit WaitingSocket(TimerEntry::Callback on_deadline) noexcept : TimerEntry(on_deadline) {}
  int fd = -1;  // -1: the slot is free
  WaitingSocket* next_free = nullptr;

 protected:
  ~WaitingSocket() = default;
};

template <class Slot>
class WaitingRoom {
 public:
  WaitingRoom(Reactor& reactor, Duration deadline) : reactor_(reactor), deadline_(deadline) {}
  // Resets every socket still waiting.
  ~WaitingRoom() {
    for (auto& chunk : chunks_)
      for (Slot& slot : chunk->slots)
        if (slot.fd >= 0) reset(slot);
  }
  WaitingRoom(const WaitingRoom&) = delete;
  WaitingRoom& operator=(const WaitingRoom&) = delete;

  // A free slot for `fd` (a new chunk when none is free: may throw std::bad_alloc, and then
  // resets `fd`).  `init` prepares a fresh chunk's slots, once each.
  template <class Init>
  Slot& enter(int fd, Init&& init) {
    if (!free_) {
      try {
        chunks_.push_back(std::make_unique<Chunk>());
      } catch (...) {
        reset_close(fd);
        throw;
      }
      for (Slot& slot : chunks_.back()->slots) {
        init(slot);
        slot.next_free = free_;
        free_ = &slot;
      }
    }
    Slot& slot = static_cast<Slot&>(*free_);
    free_ = slot.next_free;
    slot.fd = fd;
    ++size_;
    return slot;
  }

  // The socket must wait for more: registered edge-triggered, its deadline started.  False if
  // the reactor refused it (the socket is reset and the slot freed then).
  bool wait(Slot& slot) {
    try {
      // Bytes that came after the caller looked are reported by the first epoll_wait after this.
      reactor_.add(slot.fd, EPOLLIN | EPOLLRDHUP | EPOLLET, slot);
    } catch (const std::system_error&) {
      reset(slot);
      return false;
    }
    reactor_.timers().schedule(slot, reactor_.now() + deadline_);
    return true;
  }

  // The slot is free again; the socket stays open (it was passed on, or the caller closes it).
  void leave(Slot& slot) noexcept {
    reactor_.remove(slot.fd);
    reactor_.timers().cancel(slot);
    slot.fd = -1;
    slot.next_free = free_;
    free_ = &slot;
    --size_;
  }

  void reset(Slot& slot) noexcept {
    int fd = slot.fd;
    leave(slot);
    reset_close(fd);
  }

  std::size_t size() const noexcept { return size_; }

 private:
  struct Chunk {
    Slot slots[64];
  };

  Reactor& reactor_;
  Duration deadline_;
  std::vector<std::unique_ptr<Chunk>> chunks_;  // chunks never move: epoll and the wheel point in
  WaitingSocket* free_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace evwheel
