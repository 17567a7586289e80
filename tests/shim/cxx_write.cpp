// C++ and C writers for the write test: std::ofstream (libstdc++ writes the FILE's fd
// directly), stdio fopen("wb")/fwrite/fprintf, fopen("a") appending, writev, and a read-write
// file rewritten in place (pwrite, ftruncate: staged). Run on the prefix and on a local
// directory; the files must be equal.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::string dir = argv[1];
  {
    std::ofstream out(dir + "/ofstream.txt", std::ios::binary);
    for (int i = 0; i < 200000; ++i) out << "line " << i << '\n';
    out.close();
    if (!out) return std::perror("ofstream"), 1;
  }
  FILE* f = std::fopen((dir + "/stdio.bin").c_str(), "wb");
  if (!f) return std::perror("fopen wb"), 1;
  std::string block(1 << 20, 'x');
  for (int i = 0; i < 3; ++i) std::fwrite(block.data(), 1, block.size(), f);
  std::fprintf(f, "tail %d\n", 42);
  if (std::fclose(f) != 0) return std::perror("fclose"), 1;
  f = std::fopen((dir + "/stdio.bin").c_str(), "a");
  if (!f) return std::perror("fopen a"), 1;
  std::fputs("appended\n", f);
  if (std::fclose(f) != 0) return std::perror("fclose a"), 1;

  int fd = open((dir + "/vector.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return std::perror("open"), 1;
  char a[] = "first ", b[] = "second\n";
  iovec iov[2] = {{a, sizeof a - 1}, {b, sizeof b - 1}};
  if (writev(fd, iov, 2) != static_cast<ssize_t>(sizeof a + sizeof b - 2)) return std::perror("writev"), 1;
  if (close(fd) != 0) return std::perror("close"), 1;

  fd = open((dir + "/rw.bin").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return std::perror("open rw"), 1;
  std::string data(3 << 20, 'a');
  if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    return std::perror("write"), 1;
  if (pwrite(fd, "HEADER", 6, 0) != 6 || pwrite(fd, "MIDDLE", 6, 1 << 20) != 6)
    return std::perror("pwrite"), 1;
  if (ftruncate(fd, (2 << 20) + 5) != 0) return std::perror("ftruncate"), 1;
  char back[6];
  if (pread(fd, back, 6, 1 << 20) != 6 || std::string(back, 6) != "MIDDLE")
    return std::puts("read back differs"), 1;
  if (close(fd) != 0) return std::perror("close rw"), 1;
  std::puts("written");
  return 0;
}
