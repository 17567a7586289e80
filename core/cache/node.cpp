#include "cache/node.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/encode.hpp"

namespace ossshim::cache {

// From cache.cpp: the directory checks and the hash, so both files agree on names and rules.
Status own_directory(const std::string& dir);
std::string root_directory(const Config& config);
void identity_hash(std::string_view data, std::uint8_t out[16]);

namespace {
Error node_error(const std::string& target, const std::string& message) {
  Error e;
  e.err = errno ? errno : EIO;
  e.op = "node state";
  e.target = target;
  e.message = message + ": " + std::strerror(e.err);
  return e;
}
std::string hash_hex(std::string_view text) {
  std::uint8_t id[16];
  identity_hash(text, id);
  return util::hex_lower(std::string_view(reinterpret_cast<const char*>(id), 12));
}
}  // namespace

Result<std::unique_ptr<Node>> Node::attach(const Config& config) {
  std::string root = root_directory(config);
  if (auto st = own_directory(root); !st) return st.error();
  std::string tag = hash_hex(config.endpoint);
  std::string locks = root + "/locks-" + tag;
  if (auto st = own_directory(locks); !st) return st.error();
  std::string path = root + "/node-" + tag;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return node_error(path, "cannot open");
  // A zero-filled page: the epoch starts at 0 in a new file; ftruncate never shrinks it here.
  struct stat st;
  if (::fstat(fd, &st) != 0 || (st.st_size < 4096 && ::ftruncate(fd, 4096) != 0)) {
    auto e = node_error(path, "cannot size");
    ::close(fd);
    return e;
  }
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return node_error(path, "cannot map");
  std::unique_ptr<Node> n(new Node);
  n->locks_ = locks;
  n->epoch_ = static_cast<std::atomic<std::uint64_t>*>(m);
  return n;
}

Node::~Node() {
  if (epoch_) ::munmap(epoch_, 4096);
}

std::string Node::lock_path(const std::string& display, const char* kind) const {
  return locks_ + "/" + hash_hex(display) + "." + kind;
}

}  // namespace ossshim::cache
