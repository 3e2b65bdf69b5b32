// sha1 — see sha1.hpp.  Follows FIPS 180-4 §6.1: 512-bit blocks, an 80-word message schedule
// and five 32-bit working variables; words are big-endian.
#include "sha1.hpp"

#include <algorithm>
#include <cstring>

namespace evwheel {

namespace {

uint32_t rotate_left(uint32_t x, int n) { return x << n | x >> (32 - n); }

uint32_t load_big_endian(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

void store_big_endian(uint32_t x, uint8_t* p) {
  p[0] = static_cast<uint8_t>(x >> 24);
  p[1] = static_cast<uint8_t>(x >> 16);
  p[2] = static_cast<uint8_t>(x >> 8);
  p[3] = static_cast<uint8_t>(x);
}

}  // namespace

void Sha1::reset() noexcept {
  // FIPS 180-4 §5.3.1.
  state_[0] = 0x67452301;
  state_[1] = 0xefcdab89;
  state_[2] = 0x98badcfe;
  state_[3] = 0x10325476;
  state_[4] = 0xc3d2e1f0;
  length_ = 0;
  buffered_ = 0;
}

void Sha1::compress(const uint8_t* block) noexcept {
  uint32_t w[80];
  for (int t = 0; t < 16; ++t) w[t] = load_big_endian(block + 4 * t);
  for (int t = 16; t < 80; ++t) w[t] = rotate_left(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
  for (int t = 0; t < 80; ++t) {
    // The round function and constant of each group of 20 rounds (FIPS 180-4 §4.1.1, §4.2.1).
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    uint32_t next = rotate_left(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rotate_left(b, 30);
    b = a;
    a = next;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
}

void Sha1::update(std::string_view bytes) noexcept {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  std::size_t n = bytes.size();
  length_ += n;
  if (buffered_ > 0) {
    std::size_t take = std::min(n, kBlockSize - buffered_);
    if (take > 0) std::memcpy(block_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < kBlockSize) return;
    compress(block_);
    buffered_ = 0;
  }
  // Whole blocks are hashed where they lie; only a trailing piece is copied.
  for (; n >= kBlockSize; p += kBlockSize, n -= kBlockSize) compress(p);
  if (n > 0) std::memcpy(block_, p, n);
  buffered_ = n;
}

Sha1Digest Sha1::finish() noexcept {
  // Padding (FIPS 180-4 §5.1.1): a 1 bit, zeros up to 56 bytes into a block, then the message
  // length in bits as a 64-bit big-endian number.
  const uint64_t bits = length_ * 8;
  block_[buffered_++] = 0x80;
  if (buffered_ > kBlockSize - 8) {
    std::memset(block_ + buffered_, 0, kBlockSize - buffered_);
    compress(block_);
    buffered_ = 0;
  }
  std::memset(block_ + buffered_, 0, kBlockSize - 8 - buffered_);
  store_big_endian(static_cast<uint32_t>(bits >> 32), block_ + kBlockSize - 8);
  store_big_endian(static_cast<uint32_t>(bits), block_ + kBlockSize - 4);
  compress(block_);
  Sha1Digest digest;
  for (int i = 0; i < 5; ++i) store_big_endian(state_[i], digest.data() + 4 * i);
  reset();
  return digest;
}

Sha1Digest sha1(std::string_view message) noexcept {
  Sha1 hash;
  hash.update(message);
  return hash.finish();
}

}  // namespace evwheel
