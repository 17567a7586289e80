#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "util/crc64.hpp"
#include "vfs/whole_crc.hpp"

using ossshim::vfs::WholeCrc;
using State = WholeCrc::State;

namespace {
std::string object_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}
std::uint64_t crc_of(const std::string& s) {
  return ossshim::util::crc64_update(0, s.data(), s.size());
}
}  // namespace

TEST_CASE("pieces in order complete the object; the CRC64 matches", "[whole_crc]") {
  auto data = object_bytes(10000, 1);
  WholeCrc w(data.size());
  w.note_server(crc_of(data));
  CHECK(w.add(0, data.data(), 4000) == State::pending);
  CHECK(w.add(4000, data.data() + 4000, 6000) == State::matched);
  CHECK(w.computed() == crc_of(data));
}

TEST_CASE("pieces out of order, overlapping and repeated, each byte counted once", "[whole_crc]") {
  auto data = object_bytes(100000, 2);
  std::mt19937 rng(3);
  for (int round = 0; round < 50; ++round) {
    WholeCrc w(data.size());
    w.note_server(crc_of(data));
    State s = State::pending;
    for (int piece = 0; piece < 400 && s == State::pending; ++piece) {
      std::size_t off = rng() % data.size(), len = 1 + rng() % 9000;
      len = std::min(len, data.size() - off);
      s = w.add(off, data.data() + off, len);
    }
    if (s == State::pending) s = w.add(0, data.data(), data.size());  // fill the remaining gaps
    REQUIRE(s == State::matched);
  }
}

TEST_CASE("one damaged byte anywhere is a mismatch once the object is covered", "[whole_crc]") {
  auto data = object_bytes(50000, 4);
  std::uint64_t good = crc_of(data);
  auto bad = data;
  bad[31337] ^= 0x01;
  WholeCrc w(data.size());
  CHECK(w.add(40000, bad.data() + 40000, 10000) == State::pending);
  CHECK(w.add(0, bad.data(), 30000) == State::pending);
  CHECK(w.add(20000, bad.data() + 20000, 25000) == State::pending);  // no server CRC yet
  CHECK(w.note_server(good) == State::mismatched);
  CHECK(w.expected() == good);
  CHECK(w.computed() == crc_of(bad));
  // Sticky: good bytes received later do not clear it.
  CHECK(w.add(0, data.data(), data.size()) == State::mismatched);
}

TEST_CASE("the first server report wins; an empty object matches CRC 0", "[whole_crc]") {
  WholeCrc empty(0);
  CHECK(empty.note_server(0) == State::matched);
  auto data = object_bytes(100, 5);
  WholeCrc w(data.size());
  w.note_server(crc_of(data));
  w.note_server(crc_of(data) + 1);  // a later, different report is ignored
  CHECK(w.add(0, data.data(), data.size()) == State::matched);
}

TEST_CASE("bytes past the end are ignored", "[whole_crc]") {
  auto data = object_bytes(1000, 6);
  WholeCrc w(600);
  w.note_server(crc_of(data.substr(0, 600)));
  CHECK(w.add(500, data.data() + 500, 500) == State::pending);
  CHECK(w.add(0, data.data(), 500) == State::matched);
}

TEST_CASE("chunks with known CRC64s and received pieces combine", "[whole_crc]") {
  auto data = object_bytes(30000, 7);
  WholeCrc w(data.size());
  w.note_server(crc_of(data));
  CHECK(w.add_known(10000, 10000, crc_of(data.substr(10000, 10000))) == State::pending);
  CHECK(w.add_known(15000, 10000, 12345) == State::pending);  // overlaps: ignored, not folded in
  CHECK(w.add(0, data.data(), 10000) == State::pending);
  CHECK(w.add(20000, data.data() + 20000, 10000) == State::matched);
}
