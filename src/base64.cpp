// base64 — see base64.hpp.
#include "base64.hpp"

#include <array>

namespace evwheel {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kNotInAlphabet = 0xff;

// Each character's 6-bit value, or kNotInAlphabet ('=' included: padding is handled apart).
constexpr std::array<uint8_t, 256> make_values() {
  std::array<uint8_t, 256> values{};
  for (auto& value : values) value = kNotInAlphabet;
  for (uint8_t i = 0; i < 64; ++i) values[static_cast<unsigned char>(kAlphabet[i])] = i;
  return values;
}
constexpr std::array<uint8_t, 256> kValues = make_values();

}  // namespace

std::size_t base64_encode(std::string_view bytes, char* out) noexcept {
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t n = bytes.size();
  char* start = out;
  for (; n >= 3; in += 3, n -= 3) {
    uint32_t group = uint32_t{in[0]} << 16 | uint32_t{in[1]} << 8 | in[2];
    *out++ = kAlphabet[group >> 18];
    *out++ = kAlphabet[group >> 12 & 63];
    *out++ = kAlphabet[group >> 6 & 63];
    *out++ = kAlphabet[group & 63];
  }
  if (n > 0) {
    uint32_t group = uint32_t{in[0]} << 16 | (n == 2 ? uint32_t{in[1]} << 8 : 0);
    *out++ = kAlphabet[group >> 18];
    *out++ = kAlphabet[group >> 12 & 63];
    *out++ = n == 2 ? kAlphabet[group >> 6 & 63] : '=';
    *out++ = '=';
  }
  return static_cast<std::size_t>(out - start);
}

std::ptrdiff_t base64_decode(std::string_view text, uint8_t* out, std::size_t capacity) noexcept {
  if (text.size() % 4 != 0) return -1;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  const std::size_t size = text.size() / 4 * 3 - padding;
  if (size > capacity) return -1;
  // Padding counts as zero bits; the canonical check below makes sure they are.
  uint32_t group = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    uint8_t value = i >= text.size() - padding ? 0 : kValues[static_cast<unsigned char>(text[i])];
    if (value == kNotInAlphabet) return -1;
    group = group << 6 | value;
    if (i % 4 != 3) continue;
    const uint8_t bytes[3] = {static_cast<uint8_t>(group >> 16), static_cast<uint8_t>(group >> 8),
                              static_cast<uint8_t>(group)};
    const std::size_t at = i / 4 * 3;
    for (std::size_t j = 0; j < 3; ++j) {
      if (at + j < size) {
        out[at + j] = bytes[j];
      } else if (bytes[j] != 0) {
        return -1;  // bits under the padding: not the canonical encoding
      }
    }
    group = 0;
  }
  return static_cast<std::ptrdiff_t>(size);
}

}  // namespace evwheel
