// C++ and stdio readers on the same file and directory, for the differential test: ifstream
// (libstdc++ reads the FILE's fd directly), fopen/fread/fseek, getdents-free directory APIs
// (scandir, readdir_r, telldir/seekdir). Prints what it read; run on the prefix and on a copy.
#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static unsigned long checksum(const std::string& s) {
  unsigned long h = 1469598103934665603ul;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ul;
  return h;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::perror(argv[1]);
    return 1;
  }
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.clear();
  in.seekg(-1000, std::ios::end);
  std::string tail(1000, '\0');
  in.read(tail.data(), 1000);
  std::cout << "ifstream: " << all.size() << " bytes, " << checksum(all) << ", tail " << checksum(tail)
            << "\n";

  FILE* f = std::fopen(argv[1], "rb");
  std::vector<char> buf(100000);
  std::fseek(f, 12345, SEEK_SET);
  size_t n = std::fread(buf.data(), 1, buf.size(), f);
  std::cout << "fread: " << n << " bytes at " << std::ftell(f) - static_cast<long>(n) << ", "
            << checksum(std::string(buf.data(), n)) << ", fileno valid " << (fileno(f) >= 0) << "\n";
  std::fclose(f);

  struct dirent** list;
  int count = scandir(argv[2], &list, nullptr, alphasort);
  std::cout << "scandir: " << count << " entries:";
  for (int i = 0; i < count; ++i) {
    std::cout << " " << list[i]->d_name;
    free(list[i]);
  }
  if (count >= 0) free(list);
  std::cout << "\n";

  DIR* d = opendir(argv[2]);
  long second = -1;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    names.push_back(e->d_name);
    if (names.size() == 2) second = telldir(d);
  }
  seekdir(d, second);
  struct dirent* again = readdir(d);
  std::cout << "readdir: " << names.size() << " entries; after seekdir: "
            << (again && std::find(names.begin(), names.end(), again->d_name) != names.end() ? "a known entry"
                                                                                             : "?")
            << "\n";
  closedir(d);
  return 0;
}
