// base64 — the standard alphabet of RFC 4648 §4, with '=' padding.
//
// Encoding writes into the caller's storage and never fails.  Decoding is strict, for checking
// what a peer sent (a Sec-WebSocket-Key must decode to exactly 16 bytes): it refuses anything
// but the canonical encoding — a length that is not a multiple of 4, characters outside the
// alphabet (whitespace, line breaks and the URL-safe '-' '_' included), '=' anywhere but the
// last one or two places, and non-zero bits in the last character's unused part (RFC 4648
// §3.5), so each byte string has exactly one accepted text.  Nothing allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evwheel {

// The length of the encoding of `size` bytes.
constexpr std::size_t base64_encoded_size(std::size_t size) noexcept { return (size + 2) / 3 * 4; }

// Writes the encoding of `bytes` (base64_encoded_size(bytes.size()) characters) to `out` and
// returns its length.
std::size_t base64_encode(std::string_view bytes, char* out) noexcept;

// Decodes `text` into `out` (room for `capacity` bytes) and returns the number of bytes, or -1
// when `text` is not a canonical encoding or its bytes would not fit.
std::ptrdiff_t base64_decode(std::string_view text, uint8_t* out, std::size_t capacity) noexcept;

}  // namespace evwheel
