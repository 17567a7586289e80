// CRC-64/ECMA as OSS computes it (CRC-64/XZ: reflected, init and xorout all ones).
// Backed by ISA-L's crc64_ecma_refl.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ossshim::util {

// Continue a CRC: prev is the previous *final* value (0 for the empty string).
std::uint64_t crc64_update(std::uint64_t prev, const void* data, std::size_t len);
// CRC of A||B from crc(A), crc(B) and len(B), without touching the bytes.
std::uint64_t crc64_combine(std::uint64_t crc_a, std::uint64_t crc_b, std::uint64_t len_b);

}  // namespace ossshim::util
