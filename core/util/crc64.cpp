#include "util/crc64.hpp"

namespace ossshim::util {

namespace {
constexpr std::uint64_t kPolyReflected = 0xC96C5795D7870F42ull;

// Multiply a 64x64 GF(2) matrix (one column per bit) by a vector.
std::uint64_t matrix_times(const std::uint64_t* matrix, std::uint64_t vec) {
  std::uint64_t sum = 0;
  for (int i = 0; vec != 0; ++i, vec >>= 1)
    if (vec & 1) sum ^= matrix[i];
  return sum;
}

void matrix_square(std::uint64_t* square, const std::uint64_t* matrix) {
  for (int i = 0; i < 64; ++i) square[i] = matrix_times(matrix, matrix[i]);
}
}  // namespace

std::uint64_t crc64_combine(std::uint64_t crc_a, std::uint64_t crc_b, std::uint64_t len_b) {
  if (len_b == 0) return crc_a;
  // Advancing crc_a over len_b zero bytes is a linear map; build the operator for one zero bit, then
  // square it repeatedly (1, 2, 4 ... bytes) and apply the powers selected by the bits of len_b.
  std::uint64_t even[64];
  std::uint64_t odd[64];
  odd[0] = kPolyReflected;
  std::uint64_t row = 1;
  for (int i = 1; i < 64; ++i) {
    odd[i] = row;
    row <<= 1;
  }
  matrix_square(even, odd);  // two zero bits
  matrix_square(odd, even);  // four zero bits
  do {
    matrix_square(even, odd);  // first pass: one zero byte
    if (len_b & 1) crc_a = matrix_times(even, crc_a);
    len_b >>= 1;
    if (len_b == 0) break;
    matrix_square(odd, even);
    if (len_b & 1) crc_a = matrix_times(odd, crc_a);
    len_b >>= 1;
  } while (len_b != 0);
  return crc_a ^ crc_b;
}

}  // namespace ossshim::util
