#include "store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "util/crc64.hpp"
#include "util/encode.hpp"
#include "vfs/path.hpp"

namespace ossemu {

namespace {

constexpr const char* kTempPrefix = ".oss-emulator-tmp-";

Failure no_such_bucket() {
  return {404, "NoSuchBucket", "The specified bucket does not exist."};
}
Failure no_such_key() {
  return {404, "NoSuchKey", "The specified key does not exist."};
}
Failure internal(const std::string& what) {
  return {500, "InternalError", what + ": " + std::strerror(errno)};
}

std::string random_hex(std::size_t bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string raw(bytes, '\0');
  for (char& c : raw) c = static_cast<char>(rng());
  return ossshim::util::hex_upper(raw);
}

bool mkdirs(const std::string& dir) {
  std::string partial;
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      partial = dir.substr(0, i);
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
  }
  return true;
}

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool write_small(const std::string& path, const std::string& data) {
  std::ofstream out(path);
  out << data;
  out.close();
  return !out.fail();
}

Failure no_such_upload() {
  return {404, "NoSuchUpload",
          "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
          "aborted or completed."};
}

// copy_file_range of len bytes from in at *in_off to the end of out.
bool copy_range(int in, loff_t in_off, int out, std::uint64_t len) {
  while (len > 0) {
    ssize_t n = ::copy_file_range(in, &in_off, out, nullptr, len, 0);
    if (n <= 0) return false;
    len -= static_cast<std::uint64_t>(n);
  }
  return true;
}

// A directory marker object "dir/" made by PutObject is a directory holding this file, so it
// survives while the directory has other objects (deleting them must not delete the marker, as
// in OSS). A directory without it is only implied by the keys below it.
constexpr char kMarkerFile[] = ".ossemu-marker";

// Collects every key under dir (relative to bucket_dir) whose key starts with `prefix`.
void walk(const std::string& bucket_dir, const std::string& rel, const std::string& prefix,
          std::vector<std::string>& keys) {
  std::string dir = bucket_dir + (rel.empty() ? "" : "/" + rel);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  bool any = false, marked = false;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name == kMarkerFile) {
      marked = true;
      continue;
    }
    any = true;
    if (name.starts_with(kTempPrefix)) continue;
    std::string key = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::lstat((bucket_dir + "/" + key).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      std::string as_prefix = key + "/";
      // Descend only where keys with the prefix can live.
      if (as_prefix.starts_with(prefix) || prefix.starts_with(as_prefix)) walk(bucket_dir, key, prefix, keys);
    } else if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && key.starts_with(prefix)) {
      keys.push_back(key);
    }
  }
  ::closedir(d);
  // An empty directory (or one made as a marker) is a directory marker object "rel/".
  if ((!any || marked) && !rel.empty() && (rel + "/").starts_with(prefix)) keys.push_back(rel + "/");
}

}  // namespace

bool valid_bucket_name(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return b.front() != '-' && b.back() != '-';
}

std::uint64_t crc64_of_file(int fd, std::uint64_t size) {
  std::vector<char> buf(4 << 20);
  std::uint64_t crc = 0, off = 0;
  while (off < size) {
    ssize_t n =
        ::pread(fd, buf.data(), std::min<std::uint64_t>(buf.size(), size - off), static_cast<off_t>(off));
    if (n <= 0) break;
    crc = ossshim::util::crc64_update(crc, buf.data(), static_cast<std::size_t>(n));
    off += static_cast<std::uint64_t>(n);
  }
  return crc;
}

Store::Store(std::string root) : root_(std::move(root)), state_(root_ + "/.oss-emulator") {
  mkdirs(state_ + "/uploads");
}

bool Store::bucket_exists(const std::string& bucket) const {
  struct stat st;
  return valid_bucket_name(bucket) && ::stat((root_ + "/" + bucket).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> Store::buckets() const {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(root_.c_str())) {
    while (dirent* e = ::readdir(d))
      if (bucket_exists(e->d_name)) out.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<Failure> Store::create_bucket(const std::string& bucket) {
  if (!valid_bucket_name(bucket))
    return Failure{400, "InvalidBucketName", "The specified bucket is not valid."};
  if (::mkdir((root_ + "/" + bucket).c_str(), 0755) != 0 && errno != EEXIST) return internal("mkdir");
  return std::nullopt;
}

std::optional<Failure> Store::delete_bucket(const std::string& bucket) {
  if (!bucket_exists(bucket)) return no_such_bucket();
  if (::rmdir((root_ + "/" + bucket).c_str()) != 0)
    return Failure{409, "BucketNotEmpty", "The bucket you tried to delete is not empty."};
  return std::nullopt;
}

std::optional<Failure> Store::object_path(const std::string& bucket, const std::string& key,
                                          std::string& path) const {
  if (!bucket_exists(bucket)) return no_such_bucket();
  // Keys map to files, so segments that a file system cannot hold are refused.
  bool bad = key.empty() || key.size() > 1023 || key.front() == '/' || key.find('\0') != std::string::npos;
  std::size_t start = 0;
  while (!bad && start < key.size()) {
    std::size_t end = key.find('/', start);
    std::string seg = key.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (end == std::string::npos && seg.empty()) break;  // trailing '/': directory marker
    if (seg.empty() || seg == "." || seg == ".." || seg.starts_with(kTempPrefix)) bad = true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (bad) return Failure{400, "InvalidObjectName", "The emulator cannot store this object name."};
  path = root_ + "/" + bucket + "/" + key;
  return std::nullopt;
}

std::shared_ptr<Store::Cached> Store::cached(const Identity& id) {
  std::lock_guard lock(mu_);
  auto& slot = meta_[id];
  if (!slot) slot = std::make_shared<Cached>();
  return slot;
}

std::optional<Failure> Store::head(const std::string& bucket, const std::string& key, ObjectMeta& meta) {
  return head_object(bucket, key, meta, true);
}

namespace {
// The text of the symbolic link at `path`; false if it is none.
bool link_at(const std::string& path, std::string& text) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0 || n == static_cast<ssize_t>(sizeof buf)) return false;
  text.assign(buf, static_cast<std::size_t>(n));
  return true;
}
std::string link_etag(const std::string& target) {
  return "\"" + ossshim::util::hex_upper(ossshim::util::md5(target)) + "\"";
}
}  // namespace

std::optional<Failure> Store::get_symlink(const std::string& bucket, const std::string& key,
                                          std::string& target, ObjectMeta& meta) {
  std::string path, text;
  if (auto f = object_path(bucket, key, path)) return f;
  struct stat st;
  if (key.back() == '/' || ::lstat(path.c_str(), &st) != 0) return no_such_key();
  if (!S_ISLNK(st.st_mode) || !link_at(path, text))
    return Failure{400, "NotSymlink", "The specified object is not a symlink."};
  if (!ossshim::vfs::link_target_key(key, text, target))
    return Failure{500, "InternalError", "symlink " + path + " points outside its bucket: " + text};
  meta = ObjectMeta{};
  meta.path = path;
  meta.mtime = st.st_mtim.tv_sec;
  meta.etag = link_etag(target);
  meta.object_type = "Symlink";
  return std::nullopt;
}

std::optional<Failure> Store::put_symlink(const std::string& bucket, const std::string& key,
                                          const std::string& target, bool forbid_overwrite,
                                          ObjectMeta& meta) {
  std::string path, target_path, temp;
  if (auto f = object_path(bucket, key, path)) return f;
  if (key.back() == '/' || target.empty() || target.back() == '/' || object_path(bucket, target, target_path))
    return Failure{400, "InvalidArgument", "x-oss-symlink-target is not a valid object name."};
  if (auto f = temp_name_for(bucket, key, temp)) return f;
  if (::symlink(ossshim::vfs::link_text(key, target).c_str(), temp.c_str()) != 0) return internal("symlink");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    ::unlink(temp.c_str());
    return Failure{409, "InvalidObjectName", "the emulator holds objects under this key as a prefix"};
  }
  if (forbid_overwrite) {
    if (::link(temp.c_str(), path.c_str()) != 0) {  // a hard link of the link: never replaces
      int err = errno;
      ::unlink(temp.c_str());
      if (err == EEXIST)
        return Failure{409, "FileAlreadyExists",
                       "The object you specified already exists and can not be overwritten."};
      errno = err;
      return internal("link");
    }
    ::unlink(temp.c_str());
  } else if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return internal("rename");
  }
  std::string stored;
  return get_symlink(bucket, key, stored, meta);
}

std::optional<Failure> Store::head_object(const std::string& bucket, const std::string& key, ObjectMeta& meta,
                                          bool follow) {
  std::string path;
  if (auto f = object_path(bucket, key, path)) return f;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return no_such_key();
  if (S_ISLNK(st.st_mode) && key.back() != '/') {
    if (!follow) return Failure{400, "InvalidTargetType", "The symlink target object type is not supported."};
    std::string target;
    ObjectMeta link;
    if (auto f = get_symlink(bucket, key, target, link)) return f;
    if (auto f = head_object(bucket, target, meta, false)) {
      if (f->code == "NoSuchKey")
        return Failure{404, "SymlinkTargetNotExist", "The symlink target object does not exist."};
      return f;
    }
    meta.object_type = "Symlink";
    meta.mtime = std::max(meta.mtime, link.mtime);
    return std::nullopt;
  }
  if (::stat(path.c_str(), &st) != 0) return no_such_key();
  bool marker = key.back() == '/';
  if (marker != S_ISDIR(st.st_mode)) return no_such_key();
  meta.path = path;
  meta.size = marker ? 0 : static_cast<std::uint64_t>(st.st_size);
  meta.mtime = st.st_mtim.tv_sec;
  Identity id{st.st_dev, st.st_ino, meta.size, st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec};
  auto c = cached(id);
  std::call_once(c->crc_once, [&] {
    if (marker) return;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    c->crc64 = crc64_of_file(fd, meta.size);
    ::close(fd);
  });
  meta.crc64 = c->crc64;
  {
    std::lock_guard lock(mu_);
    if (c->etag.empty()) {
      // Not uploaded through us: an ETag that changes whenever the file does.
      std::string ident = std::to_string(id.dev) + ":" + std::to_string(id.ino) + ":" +
                          std::to_string(id.size) + ":" + std::to_string(id.mtime_ns);
      c->etag = "\"" + ossshim::util::hex_upper(ossshim::util::md5(ident)) + "\"";
    }
    meta.etag = c->etag;
    if (!c->content_type.empty()) meta.content_type = c->content_type;
  }
  meta.object_type = "Normal";
  return std::nullopt;
}

std::optional<Failure> Store::temp_name_for(const std::string& bucket, const std::string& key,
                                            std::string& temp_path) {
  std::string path;
  if (auto f = object_path(bucket, key, path)) return f;
  std::string dir = path.substr(0, path.rfind('/'));
  if (!mkdirs(dir))
    return Failure{409, "InvalidObjectName", "a key prefix of this object is an object: " + dir};
  temp_path = dir + "/" + kTempPrefix + random_hex(8);
  return std::nullopt;
}

std::optional<Failure> Store::temp_file_for(const std::string& bucket, const std::string& key,
                                            std::string& temp_path, int& fd) {
  if (auto f = temp_name_for(bucket, key, temp_path)) return f;
  fd = ::open(temp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return internal("create " + temp_path);
  return std::nullopt;
}

std::optional<Failure> Store::commit(const std::string& bucket, const std::string& key,
                                     const std::string& temp_path, const std::string& etag,
                                     std::uint64_t crc64, const std::string& content_type,
                                     bool forbid_overwrite, ObjectMeta& meta) {
  std::string path;
  if (auto f = object_path(bucket, key, path)) return f;
  if (key.back() == '/') {
    ::unlink(temp_path.c_str());
    if (!mkdirs(path.substr(0, path.size() - 1))) return internal("mkdir");
    write_small(path + kMarkerFile, "");
    return head(bucket, key, meta);
  }
  struct stat st;
  auto exists = [&] {
    ::unlink(temp_path.c_str());
    return Failure{409, "FileAlreadyExists",
                   "The object you specified already exists and can not be overwritten."};
  };
  if (forbid_overwrite && ::lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) return exists();
  if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    ::unlink(temp_path.c_str());
    return Failure{409, "InvalidObjectName", "the emulator holds objects under this key as a prefix"};
  }
  if (::stat(temp_path.c_str(), &st) != 0) return internal("stat temp");
  Identity id{st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
              st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec};
  auto c = cached(id);
  std::call_once(c->crc_once, [&] { c->crc64 = crc64; });  // known: nothing is read back
  {
    std::lock_guard lock(mu_);
    c->etag = etag;
    c->content_type = content_type;
  }
  if (forbid_overwrite) {
    // link() never replaces: the check above and this one cannot be raced past.
    if (::link(temp_path.c_str(), path.c_str()) != 0) {
      if (errno == EEXIST) return exists();
      return internal("link");
    }
    ::unlink(temp_path.c_str());
  } else if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    return internal("rename");
  }
  return head(bucket, key, meta);
}

std::optional<Failure> Store::remove(const std::string& bucket, const std::string& key) {
  std::string path;
  if (auto f = object_path(bucket, key, path)) return f;
  if (key.back() == '/') {
    ::unlink((path + kMarkerFile).c_str());
    ::rmdir(path.c_str());
  } else
    ::unlink(path.c_str());
  // Drop directories the object leaves empty, as OSS has no directories of its own.
  std::string dir = path.substr(0, path.rfind('/', key.back() == '/' ? path.size() - 2 : std::string::npos));
  std::string bucket_dir = root_ + "/" + bucket;
  while (dir.size() > bucket_dir.size() && ::rmdir(dir.c_str()) == 0) dir = dir.substr(0, dir.rfind('/'));
  return std::nullopt;
}

void Store::replace_content(const std::string& path) {
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return;
  struct stat st;
  ::fstat(in, &st);
  std::string temp = path.substr(0, path.rfind('/') + 1) + kTempPrefix + random_hex(8);
  int out = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  std::vector<char> buf(1 << 20);
  ssize_t n;
  while (out >= 0 && (n = ::read(in, buf.data(), buf.size())) > 0) {
    for (ssize_t i = 0; i < n; ++i) buf[i] = static_cast<char>(~buf[i]);  // every byte differs
    if (::write(out, buf.data(), static_cast<std::size_t>(n)) != n) break;
  }
  ::close(in);
  if (out >= 0) {
    ::close(out);
    ::rename(temp.c_str(), path.c_str());
  }
}

ListResult Store::list(const std::string& bucket, const std::string& prefix, const std::string& delimiter,
                       const std::string& marker, int max_keys) {
  std::vector<std::string> keys;
  walk(root_ + "/" + bucket, "", prefix, keys);
  std::sort(keys.begin(), keys.end());
  ListResult out;
  int emitted = 0;
  for (const auto& key : keys) {
    if (!marker.empty() && key <= marker) continue;
    // A marker that is a common prefix skips every key under it.
    if (!marker.empty() && !delimiter.empty() && marker.ends_with(delimiter) && key.starts_with(marker))
      continue;
    std::string item = key;
    bool is_prefix = false;
    if (!delimiter.empty()) {
      std::size_t d = key.find(delimiter, prefix.size());
      if (d != std::string::npos) {
        item = key.substr(0, d + delimiter.size());
        is_prefix = true;
        if (!out.prefixes.empty() && out.prefixes.back() == item) continue;
        if (!marker.empty() && item == marker) continue;
      }
    }
    if (emitted == max_keys) {
      out.truncated = true;
      break;
    }
    ++emitted;
    out.next_marker = item;
    if (is_prefix) {
      out.prefixes.push_back(item);
    } else {
      ObjectMeta meta;
      std::string target;
      if (!get_symlink(bucket, key, target, meta)) {
        out.objects.push_back({key, 0, meta.mtime, meta.etag, "Symlink"});
        continue;
      }
      if (head(bucket, key, meta)) continue;
      out.objects.push_back({key, meta.size, meta.mtime, meta.etag});
    }
  }
  if (!out.truncated) out.next_marker.clear();
  return out;
}

std::string Store::initiate(const std::string& bucket, const std::string& key,
                            const std::string& content_type) {
  std::string id = random_hex(16);
  std::string dir = state_ + "/uploads/" + id;
  mkdirs(dir);
  write_small(dir + "/bucket", bucket);
  write_small(dir + "/key", key);
  write_small(dir + "/content-type", content_type);
  write_small(dir + "/initiated", std::to_string(std::time(nullptr)));
  std::lock_guard lock(uploads_mu_);
  layouts_[dir];
  return id;
}

std::optional<Failure> Store::upload_dir(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, std::string& dir) {
  if (!bucket_exists(bucket)) return no_such_bucket();
  bool hex = !upload_id.empty() && upload_id.find_first_not_of("0123456789ABCDEF") == std::string::npos;
  dir = state_ + "/uploads/" + upload_id;
  if (!hex || read_small(dir + "/bucket") != bucket || read_small(dir + "/key") != key)
    return no_such_upload();
  return std::nullopt;
}

std::optional<Failure> Store::part_temp(const std::string& dir, int part, std::string& temp_path, int& fd) {
  temp_path = dir + "/" + kTempPrefix + std::to_string(part) + "-" + random_hex(4);
  fd = ::open(temp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return internal("create part");
  return std::nullopt;
}

std::optional<Failure> Store::part_target(const std::string& dir, int part, std::int64_t length,
                                          PartTarget& t) {
  if (length > 0) {
    std::lock_guard lock(uploads_mu_);
    auto it = layouts_.find(dir);
    struct stat st;
    // In place only where no committed version of the part can be damaged by a failing upload.
    if (it != layouts_.end() && !it->second.completing && !it->second.writing.contains(part) &&
        ::stat((dir + "/part-" + std::to_string(part) + ".meta").c_str(), &st) != 0) {
      Layout& l = it->second;
      if (l.part_size == 0) l.part_size = static_cast<std::uint64_t>(length);
      if (static_cast<std::uint64_t>(length) <= l.part_size) {
        int fd = ::open((dir + "/data").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
          l.writing.insert(part);
          t.fd = fd;
          t.temp_path.clear();
          t.offset = static_cast<std::int64_t>(static_cast<std::uint64_t>(part - 1) * l.part_size);
          return std::nullopt;
        }
      }
    }
  }
  t.offset = -1;
  return part_temp(dir, part, t.temp_path, t.fd);
}

void Store::release_part(const std::string& dir, int part, const PartTarget& t) {
  if (t.offset < 0) return;
  std::lock_guard lock(uploads_mu_);
  if (auto it = layouts_.find(dir); it != layouts_.end()) it->second.writing.erase(part);
}

std::optional<Failure> Store::commit_part(const std::string& dir, int part, const PartTarget& t,
                                          std::uint64_t size, const std::string& etag, std::uint64_t crc64,
                                          PartInfo& info) {
  std::string base = dir + "/part-" + std::to_string(part);
  std::lock_guard lock(uploads_mu_);
  if (t.offset >= 0)
    if (auto it = layouts_.find(dir); it != layouts_.end()) it->second.writing.erase(part);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return no_such_upload();  // aborted meanwhile
  info.number = part;
  info.etag = etag;
  info.crc64 = crc64;
  info.size = size;
  info.offset = t.offset;
  info.mtime = std::time(nullptr);
  if (t.offset >= 0) {
    ::unlink(base.c_str());  // an earlier version of the part in its own file
  } else if (::rename(t.temp_path.c_str(), base.c_str()) != 0) {
    return internal("rename part");
  }
  if (!write_small(base + ".meta", etag + "\n" + std::to_string(crc64) + "\n" + std::to_string(info.size) +
                                       "\n" + std::to_string(info.offset) + "\n" +
                                       std::to_string(info.mtime) + "\n"))
    return internal("write part meta");
  return std::nullopt;
}

std::vector<PartInfo> Store::parts(const std::string& dir) {
  std::lock_guard lock(uploads_mu_);
  return parts_locked(dir);
}

std::vector<PartInfo> Store::parts_locked(const std::string& dir) {
  std::vector<PartInfo> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with("part-") || !name.ends_with(".meta")) continue;
    PartInfo p;
    p.number = std::atoi(name.c_str() + 5);
    std::istringstream meta(read_small(dir + "/" + name));
    long long mtime = 0;
    if (!(meta >> p.etag >> p.crc64 >> p.size >> p.offset >> mtime)) continue;
    p.mtime = static_cast<std::time_t>(mtime);
    out.push_back(p);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const PartInfo& a, const PartInfo& b) { return a.number < b.number; });
  return out;
}

std::optional<Failure> Store::assemble(const std::string& bucket, const std::string& key,
                                       const std::string& dir, const std::vector<const PartInfo*>& use,
                                       std::string& temp) {
  int out;
  if (auto f = temp_file_for(bucket, key, temp, out)) return f;
  for (const PartInfo* p : use) {
    bool in_data = p->offset >= 0;
    int in = ::open((dir + (in_data ? "/data" : "/part-" + std::to_string(p->number))).c_str(),
                    O_RDONLY | O_CLOEXEC);
    bool ok = in >= 0 && copy_range(in, in_data ? p->offset : 0, out, p->size);
    if (in >= 0) ::close(in);
    if (!ok) {
      ::close(out);
      ::unlink(temp.c_str());
      return internal("assemble part " + std::to_string(p->number));
    }
  }
  ::close(out);
  return std::nullopt;
}

std::optional<Failure> Store::complete(const std::string& bucket, const std::string& key,
                                       const std::string& upload_id,
                                       const std::vector<std::pair<int, std::string>>& wanted,
                                       bool forbid_overwrite, ObjectMeta& meta) {
  std::string dir;
  if (auto f = upload_dir(bucket, key, upload_id, dir)) return f;
  std::unique_lock lock(uploads_mu_);
  std::vector<PartInfo> have = parts_locked(dir);
  std::vector<std::pair<int, std::string>> chosen = wanted;
  if (chosen.empty())  // x-oss-complete-all
    for (const auto& p : have) chosen.emplace_back(p.number, p.etag);
  std::vector<const PartInfo*> use;
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    if (i > 0 && chosen[i].first <= chosen[i - 1].first)
      return Failure{400, "InvalidPartOrder", "The list of parts was not in ascending order."};
    auto it = std::find_if(have.begin(), have.end(),
                           [&](const PartInfo& p) { return p.number == chosen[i].first; });
    std::string want_etag = chosen[i].second;
    if (!want_etag.empty() && want_etag.front() != '"') want_etag = "\"" + want_etag + "\"";
    if (it == have.end() || !ossshim::util::iequals(it->etag, want_etag))
      return Failure{400, "InvalidPart",
                     "One or more of the specified parts could not be found or the specified entity tag "
                     "might not have matched the part's entity tag."};
    use.push_back(&*it);
  }
  if (use.empty()) return Failure{400, "MalformedXML", "no parts given"};
  for (std::size_t i = 0; i + 1 < use.size(); ++i)
    if (use[i]->size < 100 * 1024)
      return Failure{400, "EntityTooSmall",
                     "Your proposed upload is smaller than the minimum allowed size (part " +
                         std::to_string(use[i]->number) + ")."};
  // The data file is the object when it holds exactly parts 1..N in place, in order, and no
  // in-place part after them (the truncate would cut it) nor a writer in flight.
  auto layout = layouts_.find(dir);
  bool in_place = layout != layouts_.end() && layout->second.writing.empty() && !layout->second.completing;
  std::uint64_t part_size = in_place ? layout->second.part_size : 0, total = 0;
  for (std::size_t i = 0; in_place && i < use.size(); ++i) {
    const PartInfo& p = *use[i];
    bool last = i + 1 == use.size();
    in_place = p.number == static_cast<int>(i + 1) && p.offset == static_cast<std::int64_t>(i * part_size) &&
               (last ? p.size <= part_size : p.size == part_size);
    total += p.size;
  }
  for (const auto& p : have)
    if (p.offset >= 0 && p.number > static_cast<int>(use.size())) in_place = false;
  if (in_place) layout->second.completing = true;  // no new in-place writers
  lock.unlock();

  std::uint64_t crc = 0;
  std::string md5s;
  for (const PartInfo* p : use) {
    crc = ossshim::util::crc64_combine(crc, p->crc64, p->size);
    std::string hexdigits = p->etag.substr(1, p->etag.size() - 2);
    for (std::size_t i = 0; i + 1 < hexdigits.size(); i += 2)
      md5s.push_back(static_cast<char>(std::stoi(hexdigits.substr(i, 2), nullptr, 16)));
  }
  auto done_completing = [&] {
    std::lock_guard relock(uploads_mu_);
    if (auto it = layouts_.find(dir); it != layouts_.end()) it->second.completing = false;
  };
  std::string temp;
  if (in_place) {
    if (auto f = temp_name_for(bucket, key, temp)) {
      done_completing();
      return f;
    }
    if (::link((dir + "/data").c_str(), temp.c_str()) != 0 ||
        ::truncate(temp.c_str(), static_cast<off_t>(total)) != 0) {
      ::unlink(temp.c_str());
      done_completing();
      in_place = false;  // e.g. another file system: copy
    }
  }
  if (!in_place)
    if (auto f = assemble(bucket, key, dir, use, temp)) return f;
  std::string ctype = read_small(dir + "/content-type");
  std::string etag =
      "\"" + ossshim::util::hex_upper(ossshim::util::md5(md5s)) + "-" + std::to_string(use.size()) + "\"";
  if (auto f = commit(bucket, key, temp, etag, crc, ctype.empty() ? "application/octet-stream" : ctype,
                      forbid_overwrite, meta)) {
    if (in_place) done_completing();
    return f;
  }
  meta.object_type = "Multipart";
  abort(bucket, key, upload_id);
  return std::nullopt;
}

std::optional<Failure> Store::abort(const std::string& bucket, const std::string& key,
                                    const std::string& upload_id) {
  std::string dir;
  if (auto f = upload_dir(bucket, key, upload_id, dir)) return f;
  std::lock_guard lock(uploads_mu_);
  layouts_.erase(dir);
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.' || std::strlen(e->d_name) > 2) ::unlink((dir + "/" + e->d_name).c_str());
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
  return std::nullopt;
}

std::vector<UploadInfo> Store::uploads(const std::string& bucket, const std::string& prefix) {
  std::vector<UploadInfo> out;
  std::string base = state_ + "/uploads";
  if (DIR* d = ::opendir(base.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string id = e->d_name;
      if (id[0] == '.') continue;
      std::string dir = base + "/" + id;
      if (read_small(dir + "/bucket") != bucket) continue;
      std::string key = read_small(dir + "/key");
      if (!key.starts_with(prefix)) continue;
      // The time of initiation (the directory's mtime changes with every part).
      std::time_t initiated = static_cast<std::time_t>(std::atoll(read_small(dir + "/initiated").c_str()));
      if (struct stat st; initiated == 0 && ::stat((dir + "/bucket").c_str(), &st) == 0)
        initiated = st.st_mtim.tv_sec;
      out.push_back({bucket, key, id, initiated});
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end(), [](const UploadInfo& a, const UploadInfo& b) {
    return std::tie(a.key, a.upload_id) < std::tie(b.key, b.upload_id);
  });
  return out;
}

}  // namespace ossemu
