// conns — the pieces of the protocol between the coordinator and its children (protocol.hpp).
#include "protocol.hpp"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "evwheel/heartbeat.hpp"
#include "evwheel/websocket.hpp"

namespace bench {
namespace conns {

const char* to_string(Timers timers) {
  static const char* const kNames[kTimersKinds] = {"wheel", "lazy", "sweep", "rearm"};
  return kNames[static_cast<int>(timers)];
}

const char* to_string(Codec codec) {
  static const char* const kNames[kCodecs] = {"framed", "seed", "websocket"};
  return kNames[static_cast<int>(codec)];
}

std::shared_ptr<const evwheel::Codec> make_codec(Codec codec, evwheel::Side side) {
  switch (codec) {
    case Codec::seed: return std::make_shared<evwheel::SeedCodec>();
    case Codec::websocket: {
      evwheel::WebSocketOptions options;
      options.role = side == evwheel::Side::server ? evwheel::WebSocketRole::server : evwheel::WebSocketRole::client;
      return std::make_shared<evwheel::WebSocketCodec>(options);
    }
    case Codec::framed: break;
  }
  return std::make_shared<evwheel::FramedCodec>();
}

evwheel::Duration tick(const Options& options) {
  evwheel::HeartbeatPolicy policy;
  policy.ping_interval = std::chrono::milliseconds(options.ping_ms);
  policy.idle_timeout = std::chrono::milliseconds(options.idle_ms);
  policy.tick = std::chrono::milliseconds(options.tick_ms);
  return policy.effective_tick();
}

std::string client_source(int a) {
  uint32_t low = static_cast<uint32_t>(a) + 2;
  return "127." + std::to_string((low >> 16) & 0xff) + "." + std::to_string((low >> 8) & 0xff) +
         "." + std::to_string(low & 0xff);
}

void set_error(char (&field)[kErrorSize], const std::string& message) {
  std::snprintf(field, kErrorSize, "%s", message.c_str());
}

bool attach_steering(int fd, int workers, std::string* error) {
  // A = source address (network header offset 12); low 24 bits - 2 = client number k;
  // return k mod workers, the index of the group member to receive the connection.
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_NET_OFF + 12)},
      {BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x00ffffff},
      {BPF_ALU | BPF_SUB | BPF_K, 0, 0, 2},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, static_cast<uint32_t>(workers)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0) return true;
  *error = std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno);
  return false;
}

}  // namespace conns
}  // namespace bench
