#undef _FILE_OFFSET_BITS
// Temporary files and directories: the mkstemp and mkdtemp families open with glibc-internal
// calls the shim never sees, so a template under the prefix is filled here and created with
// O_EXCL through the shim (open_virtual's node-wide claim), as sed -i, perl -i and git expect.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "real.hpp"
#include "shim.hpp"

namespace ossshim::shim {
namespace {

// Each attempt costs a round trip to OSS (glibc tries 62^3 names locally).
constexpr int kTempAttempts = 100;
constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr int kTempFlags = O_APPEND | O_CLOEXEC | O_DSYNC | O_NOATIME | O_SYNC;  // what mkostemp allows

// The six X's before a suffix of `suffixlen` characters; nullptr when the template has none.
char* template_xs(char* tmpl, int suffixlen) {
  std::size_t len = std::strlen(tmpl);
  if (suffixlen < 0 || len < 6 + static_cast<std::size_t>(suffixlen)) return nullptr;
  char* xs = tmpl + len - suffixlen - 6;
  return std::strncmp(xs, "XXXXXX", 6) == 0 ? xs : nullptr;
}

void fill_random(char* xs) {
  unsigned char r[6];
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    // No entropy yet (early boot): a clock, the pid and a counter still make names unlikely to meet.
    static std::atomic<unsigned> counter{0};
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long v = static_cast<unsigned long>(ts.tv_nsec) ^ (static_cast<unsigned long>(getpid()) << 20) ^
                      (counter.fetch_add(1) * 7919ul);
    for (auto& c : r) c = static_cast<unsigned char>(v >>= 5);
  }
  for (int i = 0; i < 6; ++i) xs[i] = kLetters[r[i] % (sizeof kLetters - 1)];
}

// Tries fresh names in `tmpl` until `create` (0 or -1/errno) does not fail with EEXIST.
template <class Create>
int with_fresh_name(char* tmpl, int suffixlen, Create create) {
  char* xs = template_xs(tmpl, suffixlen);
  if (!xs) return fail(EINVAL);
  for (int attempt = 0; attempt < kTempAttempts; ++attempt) {
    fill_random(xs);
    vfs::VPath p;
    if (!resolve(AT_FDCWD, tmpl, p)) return fail(EINVAL);
    int r = create(p);
    if (r >= 0 || errno != EEXIST) return r;
  }
  std::memcpy(xs, "XXXXXX", 6);
  return fail(EEXIST);
}

int make_temp_file(char* tmpl, int suffixlen, int flags) {
  if (flags & ~kTempFlags) return fail(EINVAL);
  return with_fresh_name(tmpl, suffixlen, [flags](const vfs::VPath& p) {
    return open_virtual(p, O_RDWR | O_CREAT | O_EXCL | (flags & kTempFlags));
  });
}

char* make_temp_dir(char* tmpl) {
  int r = with_fresh_name(tmpl, 0, [](const vfs::VPath& p) {
    vfs::Vfs* fs = filesystem();
    if (!fs) return -1;
    auto st = fs->mkdir(p);
    return st ? 0 : fail(st.error());
  });
  return r == 0 ? tmpl : nullptr;
}

}  // namespace
}  // namespace ossshim::shim

using namespace ossshim::shim;

// Is this template ours? (A template resolving outside the prefix, "/oss/../tmp/x", is not.)
#define TEMP_BODY(tmpl, virtual_call, real_call) \
  Target t(AT_FDCWD, tmpl);                      \
  if (t.handled) return virtual_call;            \
  return real_call

extern "C" {

int mkstemp(char* tmpl) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, 0, 0), REAL(mkstemp)(tmpl));
}
int mkstemp64(char* tmpl) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, 0, 0), REAL(mkstemp64)(tmpl));
}
int mkstemps(char* tmpl, int suffixlen) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, suffixlen, 0), REAL(mkstemps)(tmpl, suffixlen));
}
int mkstemps64(char* tmpl, int suffixlen) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, suffixlen, 0), REAL(mkstemps64)(tmpl, suffixlen));
}
int mkostemp(char* tmpl, int flags) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, 0, flags), REAL(mkostemp)(tmpl, flags));
}
int mkostemp64(char* tmpl, int flags) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, 0, flags), REAL(mkostemp64)(tmpl, flags));
}
int mkostemps(char* tmpl, int suffixlen, int flags) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, suffixlen, flags), REAL(mkostemps)(tmpl, suffixlen, flags));
}
int mkostemps64(char* tmpl, int suffixlen, int flags) {
  TEMP_BODY(tmpl, make_temp_file(tmpl, suffixlen, flags), REAL(mkostemps64)(tmpl, suffixlen, flags));
}
char* mkdtemp(char* tmpl) {
  TEMP_BODY(tmpl, make_temp_dir(tmpl), REAL(mkdtemp)(tmpl));
}

}  // extern "C"
