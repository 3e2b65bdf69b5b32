// Unit tests for evwheel::Mailbox (include/evwheel/mailbox.hpp): order, the bound, the wake-up
// signal, and letters lost to a throwing receiver.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "evwheel/mailbox.hpp"

using evwheel::ConnectionId;
using evwheel::Mailbox;

namespace {

Mailbox::Letter letter(uint16_t receiver, std::string_view bytes, int32_t fd = 3) {
  return Mailbox::Letter{receiver, Mailbox::Target::one, ConnectionId{7, fd, 1, receiver}, bytes};
}

std::vector<std::string> deliver_all(Mailbox& box) {
  std::vector<std::string> got;
  box.deliver([&](const Mailbox::Letter& l) { got.emplace_back(l.bytes); });
  return got;
}

}  // namespace

TEST_CASE("letters are delivered in put order with their address, and only the first into an empty mailbox asks for a wake-up") {
  Mailbox box(4096);
  bool was_empty = false;
  REQUIRE(box.put(letter(2, "one", 11), &was_empty));
  CHECK(was_empty);
  REQUIRE(box.put(letter(2, ""), &was_empty));
  CHECK_FALSE(was_empty);
  REQUIRE(box.put({5, Mailbox::Target::all, {}, "three"}, &was_empty));
  std::vector<Mailbox::Letter> seen;
  std::vector<std::string> bytes;
  CHECK(box.deliver([&](const Mailbox::Letter& l) {
    seen.push_back(l);
    bytes.emplace_back(l.bytes);
  }) == 3);
  REQUIRE(seen.size() == 3);
  CHECK(bytes == std::vector<std::string>{"one", "", "three"});
  CHECK(seen[0].receiver == 2);
  CHECK(seen[0].target == Mailbox::Target::one);
  CHECK(seen[0].id == ConnectionId{7, 11, 1, 2});
  CHECK(seen[2].receiver == 5);
  CHECK(seen[2].target == Mailbox::Target::all);
  CHECK(box.deliver([](const Mailbox::Letter&) { FAIL("delivered twice"); }) == 0);
  REQUIRE(box.put(letter(1, "again"), &was_empty));
  CHECK(was_empty);  // empty again after delivery
}

TEST_CASE("a letter that does not fit is refused and counted; the mailbox never grows") {
  Mailbox box(256);
  bool was_empty = false;
  std::string big(200, 'x');
  REQUIRE(box.put(letter(0, big), &was_empty));
  CHECK_FALSE(box.put(letter(0, big), &was_empty));
  CHECK_FALSE(box.put(letter(0, std::string(300, 'y')), &was_empty));
  CHECK(box.refused() == 2);
  CHECK(deliver_all(box) == std::vector<std::string>{big});
  CHECK(box.put(letter(0, big), &was_empty));  // room again once delivered
}

TEST_CASE("a letter's address takes room too: a letter as long as the capacity is refused, and the largest that fits fills the mailbox") {
  constexpr std::size_t kCapacity = 256;
  bool was_empty = false;
  Mailbox whole(kCapacity);
  CHECK_FALSE(whole.put(letter(0, std::string(kCapacity, 'x')), &was_empty));
  CHECK(whole.refused() == 1);
  // The largest letter an empty mailbox takes: after it, not even an empty letter fits.
  std::size_t largest = kCapacity;
  for (; largest > 0; --largest) {
    Mailbox probe(kCapacity);
    if (probe.put(letter(0, std::string(largest, 'x')), &was_empty)) break;
  }
  REQUIRE(largest > 0);
  CHECK(largest < kCapacity);
  Mailbox full(kCapacity);
  REQUIRE(full.put(letter(0, std::string(largest, 'x')), &was_empty));
  CHECK_FALSE(full.put(letter(0, ""), &was_empty));
  CHECK(deliver_all(full) == std::vector<std::string>{std::string(largest, 'x')});
}

TEST_CASE("a zero capacity is refused") { CHECK_THROWS_AS(Mailbox(0), std::invalid_argument); }

TEST_CASE("a receiver that throws loses the rest of its batch, counted, and the next batch is whole") {
  Mailbox box(4096);
  bool was_empty = false;
  for (const char* text : {"a", "b", "c"}) REQUIRE(box.put(letter(0, text), &was_empty));
  std::vector<std::string> got;
  CHECK_THROWS_AS(box.deliver([&](const Mailbox::Letter& l) {
                    got.emplace_back(l.bytes);
                    if (l.bytes == "a") throw std::runtime_error("receiver failed");
                  }),
                  std::runtime_error);
  CHECK(got == std::vector<std::string>{"a"});
  CHECK(box.lost() == 2);
  REQUIRE(box.put(letter(0, "d"), &was_empty));
  CHECK(deliver_all(box) == std::vector<std::string>{"d"});
}

TEST_CASE("letters put from many threads while the loop delivers arrive once each, in per-thread order") {
  Mailbox box(1 << 12);  // small: producers meet a full mailbox and retry
  constexpr int kThreads = 4, kEach = 2000;
  std::atomic<bool> give_up{false};  // set only if the consumer stops early (a failing run)
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&box, &give_up, t] {
      for (int i = 0; i < kEach && !give_up;) {
        std::string text = std::to_string(t) + ":" + std::to_string(i);
        bool was_empty;
        if (box.put(letter(static_cast<uint16_t>(t), text), &was_empty))
          ++i;
        else
          std::this_thread::yield();
      }
    });
  std::vector<int> next(kThreads, 0);
  int delivered = 0;
  bool in_order = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (delivered < kThreads * kEach && std::chrono::steady_clock::now() < deadline) {
    box.deliver([&](const Mailbox::Letter& l) {
      std::string text(l.bytes);
      int t = std::stoi(text.substr(0, text.find(':')));
      int i = std::stoi(text.substr(text.find(':') + 1));
      in_order = in_order && t == l.receiver && i == next[static_cast<std::size_t>(t)];
      ++next[static_cast<std::size_t>(t)];
      ++delivered;
    });
  }
  give_up = true;
  for (auto& producer : producers) producer.join();
  CHECK(delivered == kThreads * kEach);
  CHECK(in_order);
  CHECK(box.refused() > 0);  // the bound was met, and nothing blocked
}

TEST_CASE("delivery stops after its limit and goes on where it stopped; letters put meanwhile come after the held ones") {
  Mailbox box(1024);
  bool was_empty = false;
  for (const char* bytes : {"a", "b", "c"}) REQUIRE(box.put(letter(0, bytes), &was_empty));
  std::vector<std::string> got;
  auto collect = [&](const Mailbox::Letter& l) { got.emplace_back(l.bytes); };
  CHECK(box.deliver(collect, 2) == 2);
  CHECK(box.holding());
  REQUIRE(box.put(letter(0, "d"), &was_empty));
  CHECK(was_empty);  // the filling array was empty: the owner wakes its loop
  CHECK(box.deliver(collect, 2) == 1);  // the rest of the held batch first, alone
  CHECK_FALSE(box.holding());
  CHECK(box.deliver(collect, 2) == 1);
  CHECK(got == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(box.deliver(collect, 2) == 0);
}
