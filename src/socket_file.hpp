// socket_file — the file a unix:/path listener is bound to.  Internal (used by Listener).
//
// Before bind, a socket file nobody listens on (left by a server that crashed) is removed, so a
// restarted server can bind; a socket someone listens on is EADDRINUSE; anything that is not a
// socket is refused and never removed.  After bind, the file is remembered by device and inode,
// and removed at close only if it is still that file and this is the process that bound it (a
// fork()ed child closing its copy of the listener leaves the parent's path alone; a file a
// newer server put at the path is not ours to remove).
#pragma once

#include <sys/types.h>

#include <string>

#include "evwheel/address.hpp"

namespace evwheel {

class SocketFile {
 public:
  // Clears the way for bind(`address`), an address with a unix_path().  Throws
  // std::system_error: EADDRINUSE if a listener answers at the path, ENOTSOCK if the path is
  // something other than a socket; the message names `text` (the address as given).
  static void clear_stale(const Address& address, const std::string& text);

  // Remembers the file bind(`address`) just made.
  explicit SocketFile(const Address& address);
  // Removes the file if it is still the one bound, from the process that bound it.  Once.
  void remove() noexcept;

 private:
  std::string path_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  pid_t owner_ = 0;  // 0: nothing to remove
};

}  // namespace evwheel
