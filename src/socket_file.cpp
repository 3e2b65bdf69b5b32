// socket_file — see socket_file.hpp.
#include "socket_file.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace evwheel {

void SocketFile::clear_stale(const Address& address, const std::string& text) {
  std::string path(address.unix_path());
  struct stat status {};
  if (::lstat(path.c_str(), &status) < 0) return;  // nothing there: bind makes it
  if (!S_ISSOCK(status.st_mode))
    throw std::system_error(ENOTSOCK, std::generic_category(),
                            "evwheel: listener " + text + ": the path exists and is not a socket (left alone)");
  // A connect tells a live socket from a stale one: refused means nobody listens.  A live
  // listener sees one connection that closes at once.
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return;  // bind will report the path as in use
  int answered = ::connect(probe, address.get(), address.length());
  int error = errno;
  ::close(probe);
  if (answered == 0 || error == EAGAIN)  // EAGAIN: alive, its accept queue is full
    throw std::system_error(EADDRINUSE, std::generic_category(),
                            "evwheel: listener " + text + ": another listener has this socket");
  if (error == ECONNREFUSED) ::unlink(path.c_str());
}

SocketFile::SocketFile(const Address& address) : path_(address.unix_path()) {
  struct stat status {};
  if (::stat(path_.c_str(), &status) < 0) return;
  device_ = status.st_dev;
  inode_ = status.st_ino;
  owner_ = ::getpid();
}

void SocketFile::remove() noexcept {
  if (owner_ != ::getpid()) return;
  owner_ = 0;
  struct stat status {};
  if (::lstat(path_.c_str(), &status) == 0 && status.st_dev == device_ && status.st_ino == inode_)
    ::unlink(path_.c_str());
}

}  // namespace evwheel
