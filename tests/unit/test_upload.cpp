// Multipart part numbering: part_at must agree with the sizes part_bytes gives in sequence, since
// streamed files ship parts in sequence and staged files ship them by offset, in any order.
#include <catch2/catch.hpp>

#include "upload/writer.hpp"

using namespace ossshim::upload;

TEST_CASE("part_at finds the part that part_bytes numbering puts at an offset") {
  const std::uint64_t part = 100 * 1024;  // the smallest part OSS takes: doubling reaches 5 GiB caps
  std::uint64_t start = 0;
  for (int number = 1; number <= 10000; ++number) {
    std::uint64_t size = part_bytes(part, number);
    for (std::uint64_t off : {start, start + 1, start + size / 2, start + size - 1}) {
      PartSpan span = part_at(part, off);
      INFO("part " << number << " offset " << off);
      REQUIRE(span.number == number);
      REQUIRE(span.start == start);
      REQUIRE(span.size == size);
    }
    start += size;
  }
  // Sizes double every 2000 parts: part 2001 is twice part 2000.
  CHECK(part_bytes(part, 2000) == part);
  CHECK(part_bytes(part, 2001) == 2 * part);
  CHECK(part_at(part, start).number == 10001);  // beyond the last part: the upload refuses it
}
