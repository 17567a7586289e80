// crc64_update on ISA-L, apart from crc64.cpp so that libossshim.so can leave it (and libisal)
// to libossshim-net.so, loaded on first use.
#include <isa-l/crc64.h>

#include "util/crc64.hpp"

namespace ossshim::util {

std::uint64_t crc64_update(std::uint64_t prev, const void* data, std::size_t len) {
  // ISA-L inverts the seed on entry and the result on exit, so a previous final CRC continues the
  // computation and 0 starts it: exactly the SDKs' update(prev, data) convention.
  return crc64_ecma_refl(prev, static_cast<const unsigned char*>(data), len);
}

}  // namespace ossshim::util
