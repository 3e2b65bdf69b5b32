// mailbox — messages for connections, put from any thread and delivered on the loop thread: the
// bounded queue behind Endpoint::send(id, ...) and ReactorPool::send() from other threads.
//
// Bounded: two byte arrays of `capacity` bytes each, allocated on the first put and never
// grown.  Producers append a letter to the filling array under a mutex; the loop swaps the
// arrays and delivers the full one without the lock, so a producer never waits for delivery
// and delivery never waits for producers.  A letter that does not fit is refused (put()
// returns false, and the refusal is counted): the caller learns at once, nothing blocks,
// nothing grows.  The owner (the Reactor) wakes its loop when put() finds the mailbox empty.
// Delivery may stop after a number of letters and go on where it stopped at the next call, so
// a full mailbox (thousands of sends) never holds the loop away from its timers for long.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "evwheel/connection_id.hpp"

namespace evwheel {

class Mailbox {
 public:
  enum class Target : uint8_t {
    one,  // the connection named by the id
    all,  // every open connection of the receiver (a broadcast)
  };
  struct Letter {
    uint16_t receiver;  // which receiver on the loop (an endpoint's number)
    Target target;
    ConnectionId id;    // Target::one
    std::string_view bytes;
  };

  // Throws std::invalid_argument for a capacity of 0.
  explicit Mailbox(std::size_t capacity);
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Any thread.  Copies the letter in; false (counted in refused()) when it does not fit in
  // what is left of the capacity.  `*was_empty` says whether the loop must be woken.
  bool put(const Letter& letter, bool* was_empty);

  // Loop thread: calls deliver(const Letter&) for the letters put so far, in put order, at
  // most `limit` of them; holding() then says whether some are left for the next call.  A
  // deliver that throws loses the letters after it in this batch (they are counted as lost).
  template <class Deliver>
  std::size_t deliver(Deliver&& deliver_one, std::size_t limit = SIZE_MAX);
  bool holding() const noexcept { return drain_at_ < drain_size_; }

  std::size_t capacity() const noexcept { return capacity_; }
  uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }
  uint64_t lost() const noexcept { return lost_; }

 private:
  struct Header;  // what precedes each letter's bytes in the array
  // Swaps the arrays under the lock; returns the bytes to deliver, now in draining_.
  std::size_t take();
  static std::size_t parse(const char* at, Letter* letter) noexcept;  // returns the record size

  const std::size_t capacity_;
  std::mutex mutex_;
  std::unique_ptr<char[]> filling_;    // guarded by mutex_
  std::size_t filled_ = 0;             // guarded by mutex_
  std::unique_ptr<char[]> draining_;   // the loop's, as are the next two
  std::size_t drain_size_ = 0;         // bytes of letters taken into draining_
  std::size_t drain_at_ = 0;           // where delivery goes on
  std::atomic<uint64_t> refused_{0};
  uint64_t lost_ = 0;                  // the loop's
};

// Who letters are addressed to on the loop thread (an Endpoint); see Reactor::add_receiver.
class MessageReceiver {
 public:
  virtual void receive(const Mailbox::Letter& letter) = 0;

 protected:
  ~MessageReceiver() = default;
};

template <class Deliver>
std::size_t Mailbox::deliver(Deliver&& deliver_one, std::size_t limit) {
  if (!holding()) {
    drain_size_ = take();
    drain_at_ = 0;
  }
  const char* letters = draining_.get();
  std::size_t delivered = 0;
  for (; drain_at_ < drain_size_ && delivered < limit; ++delivered) {
    Letter letter;
    drain_at_ += parse(letters + drain_at_, &letter);
    try {
      deliver_one(letter);
    } catch (...) {
      for (Letter skipped; drain_at_ < drain_size_; ++lost_) drain_at_ += parse(letters + drain_at_, &skipped);
      throw;
    }
  }
  return delivered;
}

}  // namespace evwheel
