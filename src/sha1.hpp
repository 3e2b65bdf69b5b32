// sha1 — SHA-1 (FIPS 180-4), for WebSocket's Sec-WebSocket-Accept and nothing that needs a
// secure hash: SHA-1 is broken for collisions, and RFC 6455 uses it only to prove that the
// server read the client's key.
//
// Sha1 hashes incrementally: update() any number of times with pieces of the message, then
// finish() once.  Invariant: however the message is cut into pieces, the digest is the one of
// the whole message (sha1() is the one-shot form).  Nothing allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evwheel {

using Sha1Digest = std::array<uint8_t, 20>;

class Sha1 {
 public:
  static constexpr std::size_t kBlockSize = 64;

  Sha1() noexcept { reset(); }

  // Appends `bytes` to the message.
  void update(std::string_view bytes) noexcept;
  // The digest of everything given to update() since construction or the last finish(); the
  // hash then starts over with an empty message.
  Sha1Digest finish() noexcept;

 private:
  void reset() noexcept;
  void compress(const uint8_t* block) noexcept;

  uint32_t state_[5];
  uint64_t length_;  // message bytes so far (the padding needs it in bits, modulo 2^64)
  uint8_t block_[kBlockSize];
  std::size_t buffered_;  // bytes of block_ waiting for the rest of their block
};

// The SHA-1 digest of `message`.
Sha1Digest sha1(std::string_view message) noexcept;

}  // namespace evwheel
