// buffer — see include/evwheel/buffer.hpp.
#include "evwheel/buffer.hpp"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

namespace evwheel {

Buffer::~Buffer() { std::free(data_); }

void Buffer::reserve_back(std::size_t n) {
  if (capacity_ - end_ >= n) return;
  std::size_t used = size();
  if (capacity_ - used >= n && begin_ >= used) {
    // Enough room once the consumed front is reclaimed, and the move is cheap (the live bytes
    // are no more than the gap they move over).
    std::memmove(data_, data_ + begin_, used);
    begin_ = 0;
    end_ = used;
    return;
  }
  std::size_t wanted = used + n;
  std::size_t grown = capacity_ ? capacity_ * 2 : 256;
  while (grown < wanted) grown *= 2;
  auto* bigger = static_cast<char*>(std::malloc(grown));
  if (!bigger) throw std::bad_alloc();
  if (used) std::memcpy(bigger, data_ + begin_, used);
  std::free(data_);
  data_ = bigger;
  capacity_ = grown;
  begin_ = 0;
  end_ = used;
}

void Buffer::append(const void* bytes, std::size_t n) {
  if (n == 0) return;
  const auto* from = static_cast<const char*>(bytes);
  // Bytes of this very buffer move (or are freed) when reserve_back() compacts or grows the
  // storage: find them again by their offset from the front.
  const std::less<const char*> before;
  if (data_ && !before(from, data_ + begin_) && before(from, data_ + end_)) {
    const std::size_t offset = static_cast<std::size_t>(from - (data_ + begin_));
    reserve_back(n);
    from = data_ + begin_ + offset;
  } else {
    reserve_back(n);
  }
  std::memcpy(data_ + end_, from, n);
  end_ += n;
}

void Buffer::consume(std::size_t n) noexcept {
  begin_ += n;
  if (begin_ >= end_) begin_ = end_ = 0;
}

BufferPool::~BufferPool() {
  for (Buffer* buffer : free_) delete buffer;
}

Buffer* BufferPool::acquire() {
  if (free_.empty()) return new Buffer();
  Buffer* buffer = free_.back();
  free_.pop_back();
  return buffer;
}

void BufferPool::release(Buffer* buffer) noexcept {
  if (!buffer) return;
  buffer->clear();
  if (free_.size() >= max_kept_ || buffer->capacity() > max_kept_capacity_) {
    delete buffer;
    return;
  }
  free_.push_back(buffer);  // capacity reserved up front: never allocates here
}

}  // namespace evwheel
