// resolver — see resolver.hpp.
#include "resolver.hpp"

#include <netdb.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace evwheel {

// The codes reach on_connect_error next to errno values, told apart by their sign.
static_assert(EAI_NONAME < 0 && EAI_AGAIN < 0 && EAI_FAIL < 0, "getaddrinfo codes are negative");

std::atomic<int> Lookup::running_{0};

int resolve(const std::string& host, uint16_t port, int family, std::vector<Address>* addresses) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int error = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (error == EAI_SYSTEM) return errno ? errno : EIO;
  if (error) return error;
  // An address listed twice would only be tried twice (glibc gives 127.0.0.1 again for a ::1
  // line of /etc/hosts when asked for IPv4).
  for (const addrinfo* entry = found; entry; entry = entry->ai_next) {
    Address address(entry->ai_addr, entry->ai_addrlen);
    if (std::find(addresses->begin(), addresses->end(), address) == addresses->end()) addresses->push_back(address);
  }
  ::freeaddrinfo(found);
  return addresses->empty() ? EAI_NONAME : 0;
}

std::shared_ptr<Lookup> Lookup::start(Reactor& reactor, std::string host, uint16_t port, int family, Done done) {
  auto lookup = std::make_shared<Lookup>(reactor, std::move(done));
  ++running_;
  try {
    std::thread([lookup, host = std::move(host), port, family] {
      ::pthread_setname_np(::pthread_self(), kThreadName);
      std::vector<Address> addresses;
      int error = resolve(host, port, family, &addresses);
      {
        std::lock_guard<std::mutex> lock(lookup->mutex_);
        if (lookup->reactor_)
          lookup->reactor_->post([lookup, error, addresses = std::move(addresses)]() mutable {
            if (lookup->cancelled()) return;
            lookup->done_(error, std::move(addresses));
          });
      }
      --running_;
    }).detach();
  } catch (...) {
    --running_;
    throw;
  }
  return lookup;
}

void Lookup::cancel() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  reactor_ = nullptr;
}

bool Lookup::cancelled() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  return reactor_ == nullptr;
}

}  // namespace evwheel
