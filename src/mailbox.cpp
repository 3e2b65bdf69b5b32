// mailbox — see include/evwheel/mailbox.hpp.  A letter is a Header, then its bytes, padded to
// 8 bytes so the next header is aligned.
#include "evwheel/mailbox.hpp"

#include <cstring>
#include <exception>
#include <stdexcept>

namespace evwheel {

struct Mailbox::Header {
  ConnectionId id;
  uint32_t size;
  uint16_t receiver;
  Target target;
};

namespace {
constexpr std::size_t padded(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }
}  // namespace

Mailbox::Mailbox(std::size_t capacity) : capacity_(padded(capacity)) {
  if (capacity == 0) throw std::invalid_argument("evwheel: mailbox capacity must be > 0");
}

bool Mailbox::put(const Letter& letter, bool* was_empty) {
  std::size_t record = sizeof(Header) + padded(letter.bytes.size());
  std::lock_guard<std::mutex> lock(mutex_);
  if (record > capacity_ - filled_ || letter.bytes.size() > UINT32_MAX) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!filling_) filling_.reset(new char[capacity_]);
  Header header{letter.id, static_cast<uint32_t>(letter.bytes.size()), letter.receiver, letter.target};
  std::memcpy(filling_.get() + filled_, &header, sizeof header);
  if (!letter.bytes.empty()) std::memcpy(filling_.get() + filled_ + sizeof header, letter.bytes.data(), letter.bytes.size());
  *was_empty = filled_ == 0;
  filled_ += record;
  return true;
}

std::size_t Mailbox::take() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (filled_ == 0) return 0;
  // The drained array becomes the next filling one: after the first swap no put allocates.
  if (!draining_) draining_.reset(new char[capacity_]);
  filling_.swap(draining_);
  std::size_t size = filled_;
  filled_ = 0;
  return size;
}

std::size_t Mailbox::parse(const char* at, Letter* letter) noexcept {
  Header header;
  std::memcpy(&header, at, sizeof header);
  *letter = Letter{header.receiver, header.target, header.id, std::string_view(at + sizeof header, header.size)};
  return sizeof header + padded(header.size);
}

}  // namespace evwheel
