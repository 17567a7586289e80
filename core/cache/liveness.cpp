#include "cache/liveness.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace ossshim::cache {

namespace {
struct flock slot_lock(short type, std::uint32_t slot) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = static_cast<off_t>(slot);
  l.l_len = 1;
  return l;
}
}  // namespace

int Liveness::open_file(const std::string& dir) {
  return ::open((dir + "/procs").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

bool Liveness::hold(std::uint32_t slot) const {
  struct flock l = slot_lock(F_WRLCK, slot);
  return ::fcntl(fd_, F_OFD_SETLK, &l) == 0;
}

void Liveness::release(std::uint32_t slot) const {
  struct flock l = slot_lock(F_UNLCK, slot);
  ::fcntl(fd_, F_OFD_SETLK, &l);
}

bool Liveness::held_by_other(std::uint32_t slot) const {
  struct flock l = slot_lock(F_WRLCK, slot);
  if (::fcntl(fd_, F_OFD_GETLK, &l) != 0) return true;  // cannot tell: never take over a live one
  return l.l_type != F_UNLCK;
}

}  // namespace ossshim::cache
