#include "vfs/vfs.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include <unistd.h>

#include "log/log.hpp"
#include "util/crc64.hpp"
#include "util/size.hpp"

namespace ossshim::vfs {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kDefaultChunkCache = 512ull << 20;
constexpr int kMaxAttempts = 8;  // a chunk evicted under a reader this often is read past the cache

// Runs fn(i) for i in [0, n) on up to `threads` threads (the caller's included).
template <class Fn>
void parallel_for(std::size_t n, std::size_t threads, Fn fn) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next++) < n;) fn(i);
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < std::min(n, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}
}  // namespace

Result<std::unique_ptr<Vfs>> Vfs::create(const Config& config, const auth::Credentials& creds) {
  auto client = oss::Client::create(config, creds);
  if (!client) return client.error();
  return std::unique_ptr<Vfs>(new Vfs(config, creds, std::move(client.value())));
}

Vfs::Vfs(Config config, auth::Credentials creds, std::unique_ptr<oss::Client> client)
    : config_(std::move(config)),
      creds_(std::move(creds)),
      client_(std::move(client)),
      fetcher_(config_.concurrency),
      uploader_(config_, *client_) {
  budget_ = config_.cache_size ? config_.cache_size : kDefaultChunkCache;
  if (config_.shared_cache) {
    auto c = cache::Cache::attach(config_);
    if (c) {
      shared_ = std::move(c.value());
    } else {
      log::error(c.error().to_string() +
                 " -- reading without the shared cache (each process fetches its own copy)");
    }
  }
  auto node = cache::Node::attach(config_);
  if (node) {
    node_ = std::move(node.value());
    seen_epoch_ = node_->epoch();
  } else {
    log::warn(node.error().to_string() +
              " -- other processes see this one's writes after their metadata TTLs");
  }
}

Error Vfs::error_for(const char* op, const VPath& p, int err, const std::string& message) const {
  Error e;
  e.err = err;
  e.op = op;
  e.target = display(p);
  e.message = message;
  return e;
}

void Vfs::remember(const std::string& path, const CachedAttr& entry) {
  std::lock_guard lock(attr_mu_);
  attrs_[path] = entry;
}

Result<Attr> Vfs::stat(const VPath& p, VPath* resolved) {
  int hops = 0;
  return lookup(p, true, resolved, hops);
}

Result<Attr> Vfs::lstat(const VPath& p, VPath* resolved) {
  int hops = 0;
  return lookup(p, false, resolved, hops);
}

Result<Attr> Vfs::lookup(VPath p, bool follow, VPath* resolved, int& hops) {
  for (;;) {
    auto r = attr_of(p);
    if (r && r->link && follow) {
      if (++hops > kMaxLinks) return error_for("stat", p, ELOOP, "too many levels of symbolic links");
      p.key = r->target;
      continue;
    }
    if (!r && r.error().err == ENOENT && !p.key.empty()) {
      // As on a local file system, a path through a file is "not a directory"; and a path
      // through a symlink to a directory goes on in its target.
      VPath up = parent_of(p), real_up;
      auto u = lookup(up, true, &real_up, hops);
      if (u && !u->dir) {
        r = error_for("stat", p, ENOTDIR, "a parent is a file, not a directory");
      } else if (u && real_up.key != up.key) {
        if (++hops > kMaxLinks) return error_for("stat", p, ELOOP, "too many levels of symbolic links");
        std::string name = p.key.substr(up.key.empty() ? 0 : up.key.size() + 1);
        p.key = real_up.key.empty() ? name : real_up.key + "/" + name;
        continue;
      }
    }
    if (resolved) *resolved = p;
    return r;
  }
}

Result<std::string> Vfs::readlink(const VPath& p) {
  VPath real;
  auto a = lstat(p, &real);
  if (!a) return a.error();
  if (!a->link) return error_for("readlink", p, EINVAL, "not a symbolic link");
  return link_text(real.key, a->target);
}

Status Vfs::refuse_if_read_only(const char* op, const VPath& p) {
  if (!config_.read_only) return ok_status();
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    log::warn(display(p) + ": " + op +
              " refused with EROFS: read_only is set (OSSSHIM_READ_ONLY); unset it to "
              "write under " +
              config_.prefix + " (further refusals are not logged)");
  return error_for(op, p, EROFS, "read_only is set");
}

Status Vfs::symlink(std::string_view text, const VPath& link) {
  if (auto ro = refuse_if_read_only("symlink", link); !ro) return ro;
  if (link.is_prefix_root() || link.is_bucket_root()) return error_for("symlink", link, EEXIST, "exists");
  if (text.empty()) return error_for("symlink", link, ENOENT, "empty target");
  VPath real;  // the link's place, its directory reached through any symlinks
  auto st = lstat(link, &real);
  if (st) return error_for("symlink", link, EEXIST, "exists");
  if (st.error().err != ENOENT) return st.error();
  if (auto up = parent_dir(real, "symlink"); !up) return up.error();
  std::string key;
  bool named = false;
  if (text[0] == '/') {
    VPath t;
    named = parse(config_.prefix, text, t) && t.bucket == real.bucket && !t.key.empty();
    key = t.key;
  } else {
    named = link_target_key(real.key, text, key);
  }
  if (!named)
    return error_for("symlink", link, EPERM,
                     "an OSS symlink points at a key of its own bucket, and '" + std::string(text) +
                         "' is outside " + display(VPath{real.bucket, ""}) +
                         " (link to a path inside the bucket, or copy the file)");
  oss::WriteOptions o;
  o.forbid_overwrite = true;
  auto r = client_->put_symlink(real.bucket, real.key, key, o);
  changed();
  if (!r) return r.error();
  return ok_status();
}

Result<Attr> Vfs::attr_of(const VPath& p) {
  std::string path = display(p);
  if (auto w = writing(path)) {  // open for writing here: what the program wrote so far
    Attr a = w->attr;
    a.size = size_of(*w);
    return a;
  }
  drop_stale_attrs();
  {
    std::lock_guard lock(attr_mu_);
    auto it = attrs_.find(path);
    if (it != attrs_.end() && it->second.expires > Clock::now()) {
      if (it->second.exists) return it->second.attr;
      return it->second.error;
    }
  }
  auto r = stat_uncached(p);
  CachedAttr entry;
  if (r.ok()) {
    entry.exists = true;
    entry.attr = r.value();
    entry.expires = Clock::now() + std::chrono::milliseconds(config_.attr_ttl_ms);
    remember(path, entry);
  } else if (r.error().err == ENOENT) {
    entry.error = r.error();
    entry.expires = Clock::now() + std::chrono::milliseconds(config_.negative_ttl_ms);
    remember(path, entry);
  }
  return r;
}

// A symlink object: its target from GetSymlink (a HEAD follows the link on the server).
Result<Attr> Vfs::link_attr(const VPath& p) {
  auto l = client_->get_symlink(p.bucket, p.key);
  if (!l) return l.error();
  Attr a;
  a.link = true;
  a.target = l->target;
  a.mtime = l->mtime;
  a.etag = l->etag;
  a.size = link_text(p.key, l->target).size();
  return a;
}

Result<Attr> Vfs::stat_uncached(const VPath& p) {
  Attr dir;
  dir.dir = true;
  if (p.is_prefix_root()) return dir;
  if (p.is_bucket_root()) {
    oss::ListRequest probe;
    probe.max_keys = 1;
    auto r = client_->list_objects(p.bucket, probe);
    if (!r) return r.error();
    return dir;
  }
  auto head = client_->head_object(p.bucket, p.key);
  if (head && head->object_type == "Symlink") return link_attr(p);
  if (!head &&
      (head.error().code == oss::kSymlinkTargetMissing || head.error().code == oss::kSymlinkTargetInvalid))
    return link_attr(p);
  if (head) {
    Attr a;
    a.size = head->size;
    a.mtime = head->mtime;
    a.etag = head->etag;
    return a;
  }
  if (head.error().err != ENOENT) return head.error();
  // Not an object: a directory if any key lies under "key/".
  oss::ListRequest probe;
  probe.prefix = p.key + "/";
  probe.max_keys = 1;
  auto listed = client_->list_objects(p.bucket, probe);
  if (!listed) return listed.error();
  if (!listed->objects.empty() || !listed->common_prefixes.empty()) return dir;
  return head.error();
}

Result<std::vector<DirEntry>> Vfs::list(const VPath& p) {
  std::vector<DirEntry> out;
  if (p.is_prefix_root()) return out;  // buckets are not enumerated; open them by name
  oss::ListRequest req;
  req.prefix = p.key.empty() ? "" : p.key + "/";
  bool any = false;
  for (;;) {
    auto page = client_->list_objects(p.bucket, req);
    if (!page) return page.error();
    for (const auto& o : page->objects) {
      any = true;
      std::string name = o.key.substr(req.prefix.size());
      if (name.empty()) continue;  // the directory's own marker object "key/"
      if (o.type == "Symlink") {   // its attributes need GetSymlink: not cached from here
        out.push_back({name, false, true});
        continue;
      }
      out.push_back({name, false, false});
      CachedAttr entry;
      entry.exists = true;
      entry.attr = Attr{false, o.size, o.mtime, o.etag, false, ""};
      entry.expires = Clock::now() + std::chrono::milliseconds(config_.attr_ttl_ms);
      remember(display(p) + "/" + name, entry);
    }
    for (const auto& prefix : page->common_prefixes) {
      any = true;
      std::string name = prefix.substr(req.prefix.size());
      if (!name.empty() && name.back() == '/') name.pop_back();
      if (!name.empty()) out.push_back({name, true, false});
    }
    if (!page->truncated) break;
    req.continuation_token = page->next_continuation_token;
  }
  if (!any && !p.is_bucket_root()) {
    auto st = stat(p);
    if (!st) return st.error();
    if (!st->dir) return error_for("opendir", p, ENOTDIR, "not a directory");
  }
  // A key "a" and a prefix "a/" can coexist in OSS; a directory listing shows the name once.
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) {
    return a.name != b.name ? a.name < b.name : a.dir > b.dir;
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const DirEntry& a, const DirEntry& b) { return a.name == b.name; }),
            out.end());
  return out;
}

Result<std::shared_ptr<OpenFile>> Vfs::open(const VPath& p, bool follow) {
  VPath real;
  int hops = 0;
  auto st = lookup(p, follow, &real, hops);
  if (!st) return st.error();
  if (st->link) return error_for("open", p, ELOOP, "is a symbolic link (O_NOFOLLOW)");
  auto f = std::make_shared<OpenFile>();
  f->path = real;  // a symlink's target: its bytes, its cache entry
  f->display = display(real);
  f->attr = st.value();
  if (!f->attr.dir) f->written_by = writing(f->display);
  return f;
}

Status Vfs::load_entries(OpenFile& dir) {
  std::lock_guard lock(dir.dir_mu);
  if (dir.listed) return ok_status();
  auto r = list(dir.path);
  if (!r) return r.error();
  dir.entries = std::move(r.value());
  dir.listed = true;
  return ok_status();
}

void Vfs::fetch(OpenFile& f, std::uint64_t index, Chunk& chunk) {
  std::uint64_t off = index * config_.chunk_size;
  std::size_t len = static_cast<std::size_t>(chunk.bytes);
  std::vector<char> data(len);
  oss::ObjectInfo info;
  auto r = client_->get_range(f.path.bucket, f.path.key, oss::RangeRead{off, len, data.data(), f.attr.etag},
                              &info);
  Status checked = ok_status();
  if (r && r.value() == len) checked = check_received(f, off, data.data(), len, info.crc64);
  std::lock_guard lock(chunk.mu);
  if (!checked) {
    chunk.error = checked.error();
    chunk.state = Chunk::failed;
  } else if (r && r.value() == len) {
    chunk.data = std::move(data);
    chunk.state = Chunk::ready;
  } else {
    chunk.error =
        r ? error_for("GetObject", f.path, EIO, "short read: object shorter than at open") : r.error();
    if (chunk.error.err == ESTALE)
      chunk.error.message =
          "object changed since it was opened (ETag " + f.attr.etag + "); reopen to read the new version";
    chunk.state = Chunk::failed;
  }
  chunk.cv.notify_all();
}

std::vector<std::shared_ptr<Vfs::Chunk>> Vfs::chunks(OpenFile& f, std::uint64_t first, std::uint64_t last,
                                                     std::uint64_t readahead_last) {
  std::vector<std::shared_ptr<Chunk>> needed;
  std::vector<std::pair<std::uint64_t, std::shared_ptr<Chunk>>> mine;
  std::string base = f.path.bucket + '\0' + f.path.key + '\0' + f.attr.etag + '\0';
  {
    std::lock_guard lock(chunk_mu_);
    for (std::uint64_t i = first; i <= readahead_last; ++i) {
      std::string key = base + std::to_string(i);
      auto it = chunk_map_.find(key);
      std::shared_ptr<Chunk> c;
      if (it != chunk_map_.end()) {
        c = it->second.first;
        lru_.splice(lru_.begin(), lru_, it->second.second);
      } else {
        c = std::make_shared<Chunk>();
        c->bytes = std::min<std::uint64_t>(config_.chunk_size, f.attr.size - i * config_.chunk_size);
        lru_.push_front(key);
        chunk_map_[key] = {c, lru_.begin()};
        cached_bytes_ += c->bytes;
        mine.emplace_back(i, c);
      }
      if (i <= last) needed.push_back(c);
    }
    evict_locked();
  }
  parallel_for(mine.size(), config_.concurrency,
               [&](std::size_t k) { fetch(f, mine[k].first, *mine[k].second); });
  for (auto& c : needed) {
    std::unique_lock lock(c->mu);
    c->cv.wait(lock, [&] { return c->state != Chunk::fetching; });
  }
  // Failed chunks leave the cache so that the next read tries again.
  std::lock_guard lock(chunk_mu_);
  for (auto& [i, c] : mine) {
    if (c->state != Chunk::failed) continue;
    auto it = chunk_map_.find(base + std::to_string(i));
    if (it != chunk_map_.end() && it->second.first == c) {
      cached_bytes_ -= c->bytes;
      lru_.erase(it->second.second);
      chunk_map_.erase(it);
    }
  }
  return needed;
}

void Vfs::evict_locked() {
  // Oldest first; chunks still being fetched stay (their fetcher owns them). Readers holding a
  // chunk keep its memory alive until they finish copying.
  auto it = lru_.end();
  while (cached_bytes_ > budget_ && it != lru_.begin()) {
    --it;
    auto found = chunk_map_.find(*it);
    if (found->second.first->state == Chunk::fetching) continue;
    cached_bytes_ -= found->second.first->bytes;
    chunk_map_.erase(found);
    it = lru_.erase(it);
  }
}

std::uint32_t Vfs::advance_window(OpenFile& f, std::uint64_t off) {
  // A reader continuing where it stopped gets a window that doubles up to `readahead`; a jump
  // closes it, so random reads fetch only what they ask for.
  std::uint32_t most =
      static_cast<std::uint32_t>(std::max<std::uint64_t>(1, config_.readahead / config_.chunk_size));
  if (config_.readahead == 0) most = 0;
  if (off != f.next_sequential.load() || off == 0) {
    f.window.store(off == 0 ? std::min<std::uint32_t>(1, most) : 0);
    return f.window.load();
  }
  std::uint32_t w = f.window.load();
  f.window.store(std::min(std::max<std::uint32_t>(1, w * 2), most));
  return f.window.load();
}

Result<std::size_t> Vfs::read(OpenFile& f, char* buf, std::size_t len, std::uint64_t off) {
  if (f.attr.dir) return error_for("read", f.path, EISDIR, "is a directory");
  if (auto* w = writer_of(f)) return w->read(buf, len, off);
  if (off >= f.attr.size || len == 0) return std::size_t{0};
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, f.attr.size - off));
  if (auto o = cached_object(f)) return read_shared(f, o, buf, len, off);
  return read_private(f, buf, len, off);
}

Result<std::size_t> Vfs::read_private(OpenFile& f, char* buf, std::size_t len, std::uint64_t off) {
  std::uint64_t cs = config_.chunk_size;
  std::uint64_t first = off / cs, last = (off + len - 1) / cs, final_chunk = (f.attr.size - 1) / cs;
  std::uint64_t readahead_last = std::min(final_chunk, last + advance_window(f, off));
  if (auto st = damaged_unless_ok(f); !st) return st.error();
  auto got = chunks(f, first, last, readahead_last);
  for (auto& c : got)
    if (c->state == Chunk::failed) {
      log::warn(c->error.to_string());
      return c->error;
    }
  // A read-ahead chunk may have completed a damaged object: none of it is served from then on.
  if (auto st = damaged_unless_ok(f); !st) return st.error();
  std::size_t copied = 0;
  for (std::uint64_t i = first; i <= last; ++i) {
    const auto& data = got[i - first]->data;
    std::uint64_t chunk_start = i * cs;
    std::uint64_t from = std::max<std::uint64_t>(off, chunk_start) - chunk_start;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size() - from, len - copied));
    std::memcpy(buf + copied, data.data() + from, n);
    copied += n;
  }
  f.next_sequential.store(off + copied);
  return copied;
}

Status Vfs::fill(OpenFile& f, char* dst, std::size_t len, std::uint64_t off) {
  if (auto* w = writer_of(f)) {
    for (std::size_t done = 0; done < len;) {
      auto n = w->read(dst + done, len - done, off + done);
      if (!n) return n.error();
      if (*n == 0) break;  // past what was written: the mapping's zeros
      done += *n;
    }
    return ok_status();
  }
  if (auto o = cached_object(f)) {  // through the shared cache: still each byte once per node
    auto r = read_shared(f, o, dst, len, off);
    if (!r) return r.error();
    return ok_status();
  }
  if (auto st = damaged_unless_ok(f); !st) return st.error();
  std::uint64_t cs = config_.chunk_size;
  std::size_t pieces = static_cast<std::size_t>((len + cs - 1) / cs);
  std::mutex mu;
  std::optional<Error> failure;
  parallel_for(pieces, config_.concurrency, [&](std::size_t i) {
    std::uint64_t at = static_cast<std::uint64_t>(i) * cs;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(cs, len - at));
    oss::ObjectInfo info;
    auto r = client_->get_range(f.path.bucket, f.path.key, oss::RangeRead{off + at, n, dst + at, f.attr.etag},
                                &info);
    Status checked = r && r.value() == n ? check_received(f, off + at, dst + at, n, info.crc64) : ok_status();
    if (!r || r.value() != n || !checked) {
      std::lock_guard lock(mu);
      if (!failure)
        failure = !checked ? checked.error()
                  : r      ? error_for("GetObject", f.path, EIO, "short read while mapping")
                           : r.error();
    }
  });
  if (failure) {
    log::warn(failure->to_string());
    return *failure;
  }
  return ok_status();
}

void Vfs::after_fork_child(std::vector<std::uint32_t>& pins) {
  // Every lock is free and every table consistent (the fork hooks held them across fork), but the
  // parent's workers do not exist here: their queues, claims and private-cache chunks in flight
  // would wait for ever, and the parent's connections must not be shared. Start over with fresh
  // state (the old objects are deliberately leaked).
  fetcher_.after_fork_child();
  uploader_.after_fork_child();
  if (shared_) shared_->after_fork_child(pins);
  // Uploads in progress belong to the parent: the child neither commits nor aborts them.
  for (auto& [name, weak] : writing_)
    if (auto f = weak.lock(); f && f->writer) f->writer->abandon();
  new (&attrs_) decltype(attrs_);
  new (&chunk_map_) decltype(chunk_map_);
  new (&lru_) decltype(lru_);
  cached_bytes_ = 0;
  auto client = oss::Client::create(config_, creds_);
  // The uploader keeps calling through the old client (leaked, not destroyed): its transport's
  // pool was emptied in this child (forksafe), so the child's uploads open connections of their
  // own and never share the parent's. (Constructing a new Uploader in place would register its
  // fork guard a second time.)
  if (client) (void)client_.release(), client_ = std::move(client.value());
}

namespace {
// Warnings said once per cause (or file) and process.
std::mutex g_told_mu;
const bool g_told_fork_safe = (forksafe::add_mutex(forksafe::Rank::vfs_warnings, g_told_mu), true);
std::set<std::string>* g_told = nullptr;  // guarded by g_told_mu; never freed (exit-time warnings)
bool first_time(const std::string& what) {
  std::lock_guard lock(g_told_mu);
  if (!g_told) g_told = new std::set<std::string>;
  return g_told->insert(what).second;
}
}  // namespace

// ---- The whole-object CRC64 of bytes read past the shared cache ----

WholeCrc& Vfs::whole_crc(OpenFile& f) {
  std::lock_guard file_lock(f.cache_mu);
  if (f.whole_crc) return *f.whole_crc;
  constexpr std::size_t kVersionsKept = 1024;
  std::string id =
      f.path.bucket + '\0' + f.path.key + '\0' + f.attr.etag + '\0' + std::to_string(f.attr.size);
  std::lock_guard lock(crc_mu_);
  auto& slot = crc_checks_[id];
  if (!slot) {
    slot = std::make_shared<WholeCrc>(f.attr.size);
    crc_order_.push_back(id);
    // Forget the oldest versions still unchecked or checked good; a failed one stays failed.
    for (auto it = crc_order_.begin(); crc_checks_.size() > kVersionsKept && it != crc_order_.end();) {
      auto found = crc_checks_.find(*it);
      if (found->second->state() != WholeCrc::State::mismatched && found->second != slot) {
        crc_checks_.erase(found);
        it = crc_order_.erase(it);
      } else {
        ++it;
      }
    }
  }
  f.whole_crc = slot;
  return *slot;
}

Status Vfs::damaged_unless_ok(OpenFile& f) {
  WholeCrc& check = whole_crc(f);
  if (check.state() != WholeCrc::State::mismatched) return ok_status();
  Error e = error_for("GetObject", f.path, EIO,
                      "the bytes received (CRC64 " + std::to_string(check.computed()) +
                          ") differ from the server's x-oss-hash-crc64ecma (" +
                          std::to_string(check.expected()) + ") for ETag " + f.attr.etag +
                          "; none of this version is served (rewrite the object, or report the damage to the "
                          "store's operator)");
  e.code = "CRC64Mismatch";
  return e;
}

Status Vfs::check_received(OpenFile& f, std::uint64_t off, const char* data, std::size_t len,
                           const std::optional<std::uint64_t>& server_crc) {
  WholeCrc& check = whole_crc(f);
  if (server_crc) check.note_server(*server_crc);
  check.add(off, data, len);
  return damaged_unless_ok(f);
}

// ---- Reads through the node's shared cache ----

std::shared_ptr<cache::Object> Vfs::cached_object(OpenFile& f) {
  if (!shared_ || f.attr.dir) return nullptr;
  std::lock_guard lock(f.cache_mu);
  if (!f.cache_looked) {
    f.cache_looked = true;
    auto o =
        shared_->object(cache::ObjectKey{f.path.bucket, f.path.key, f.attr.etag, f.attr.size, f.display});
    if (o) {
      f.cached = o.value();
    } else {
      // One warning per cause, not one per object (5,000 small files would print 5,000 lines).
      if (first_time("past-cache\n" + o.error().message))
        log::warn(o.error().to_string() + " -- reading " + f.display +
                  " past the shared cache (said once; other files with this cause are read the same way)");
    }
  }
  return f.cached;
}

// A demand fetch this thread waits for.
struct Vfs::Job {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<Error> error;
  void finish(Status st) {
    std::lock_guard lock(mu);
    if (!st) error = st.error();
    done = true;
    cv.notify_all();
  }
  std::optional<Error> wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    return error;
  }
};

Status Vfs::fetch_chunk(cache::Object& o, std::uint64_t index, const cache::ChunkRef& claim) {
  std::uint64_t cs = config_.chunk_size;
  std::size_t bytes = static_cast<std::size_t>(std::min<std::uint64_t>(cs, o.key.size - index * cs));
  // Straight from the socket into the cache file with pwrite: no page faults (the pages were
  // reserved at claim), and no process ever needs a writable mapping of the node's copy.
  std::uint64_t crc = 0;
  oss::RangeRead range{index * cs, bytes, nullptr, o.key.etag};
  range.write = [&](const char* data, std::size_t len, std::size_t at) {
    if (at == 0) crc = 0;  // a retry starts over
    crc = util::crc64_update(crc, data, len);
    for (std::size_t done = 0; done < len;) {
      ssize_t n = ::pwrite(o.fd, data + done, len - done, static_cast<off_t>(index * cs + at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    shared_->progress();
    return true;
  };
  oss::ObjectInfo info;
  auto r = client_->get_range(o.key.bucket, o.key.key, range, &info);
  if (!r || r.value() != bytes) {
    shared_->abandon(o, index, claim);
    shared_->count_error();
    Error e;
    if (r) {
      e.err = EIO;
      e.op = "GetObject";
      e.target = o.key.display;
      e.message = "short read: object shorter than at open";
    } else {
      e = r.error();
      if (e.err == ESTALE)
        e.message =
            "object changed since it was opened (ETag " + o.key.etag + "); reopen to read the new version";
    }
    return e;
  }
  if (info.crc64) shared_->note_crc(o, *info.crc64);
  return shared_->complete(o, index, claim, crc);
}

void Vfs::prefetch(const std::shared_ptr<cache::Object>& o, std::uint64_t first, std::uint64_t last) {
  for (std::uint64_t i = first; i <= last; ++i) {
    if (fetcher_.saturated()) return;  // the link is busy: read-ahead would only queue
    cache::ChunkRef ref;
    if (shared_->claim(*o, i, ref) != cache::Claim::claimed) continue;
    // A CRC64 mismatch found here is not lost: the cache marks the version damaged, and the
    // reads that come for these bytes fail with EIO.
    fetcher_.submit([this, o, i, ref] { (void)fetch_chunk(*o, i, ref); }, fetch::Fetcher::Priority::prefetch);
  }
}

Status Vfs::ensure(const std::shared_ptr<cache::Object>& o, std::uint64_t first, std::uint64_t last,
                   const std::function<bool(std::uint64_t, const cache::ChunkRef&, bool)>& use,
                   const std::function<Status(std::uint64_t)>& uncached) {
  // Start every missing chunk at once (parallel GETs), then take them in order.
  std::size_t n = static_cast<std::size_t>(last - first + 1);
  std::vector<cache::Claim> state(n);
  std::vector<cache::ChunkRef> refs(n);
  std::vector<std::shared_ptr<Job>> jobs(n);
  for (std::size_t k = 0; k < n; ++k) {
    state[k] = shared_->claim(*o, first + k, refs[k]);
    if (state[k] != cache::Claim::claimed) continue;
    auto job = jobs[k] = std::make_shared<Job>();
    std::uint64_t i = first + k;
    cache::ChunkRef claim = refs[k];
    fetcher_.submit([this, o, i, job, claim] { job->finish(fetch_chunk(*o, i, claim)); },
                    fetch::Fetcher::Priority::demand);
  }
  std::optional<Error> failure;
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t i = first + k;
    bool waited = state[k] != cache::Claim::ready;
    for (int attempt = 0;; ++attempt) {
      if (state[k] == cache::Claim::claimed) {
        // Ours to fetch: by the worker already queued, or (taken over, or evicted) right here.
        std::optional<Error> e;
        if (jobs[k]) {
          e = jobs[k]->wait();
          jobs[k].reset();
        } else if (auto st = fetch_chunk(*o, i, refs[k]); !st) {
          e = st.error();
        }
        if (e) {
          if (!failure) failure = e;
          break;
        }
        state[k] = shared_->wait(*o, i, refs[k]);
      } else if (state[k] == cache::Claim::busy) {
        state[k] = shared_->wait(*o, i, refs[k]);
      } else if (state[k] == cache::Claim::ready && !failure) {
        if (use(i, refs[k], waited)) break;
        waited = true;  // evicted under us: fetch again
        state[k] = attempt + 1 < kMaxAttempts ? shared_->wait(*o, i, refs[k]) : cache::Claim::uncached;
      } else if (state[k] == cache::Claim::damaged && !failure) {
        Error e;
        e.err = EIO;
        e.op = "GetObject";
        e.target = o->key.display;
        e.code = "CRC64Mismatch";
        e.message =
            "this version failed its CRC64 check against the server's x-oss-hash-crc64ecma; none of it "
            "is served (rewrite the object, or report the damage to the store's operator)";
        failure = e;
        break;
      } else if (state[k] == cache::Claim::uncached && !failure) {
        if (auto st = uncached(i); !st) failure = st.error();
        break;
      } else {
        break;  // after a failure: only settle the jobs already started
      }
    }
  }
  for (auto& job : jobs)
    if (job) (void)job->wait();  // never leave a worker writing into a buffer we gave back
  if (failure) {
    log::warn(failure->to_string());
    return *failure;
  }
  return ok_status();
}

Result<std::size_t> Vfs::read_shared(OpenFile& f, const std::shared_ptr<cache::Object>& o, char* buf,
                                     std::size_t len, std::uint64_t off) {
  // Looked up once per read; its state and `verified` are lock-free reads.
  WholeCrc& check = whole_crc(f);
  auto damaged = [&]() -> Status {
    return check.state() == WholeCrc::State::mismatched ? damaged_unless_ok(f) : ok_status();
  };
  if (auto st = damaged(); !st) return st.error();
  bool verified = shared_->verified(*o);  // then this process's own check has nothing to add
  std::uint64_t cs = config_.chunk_size;
  std::uint64_t first = off / cs, last = (off + len - 1) / cs, final_chunk = (f.attr.size - 1) / cs;
  std::uint64_t window = advance_window(f, off);
  if (window && last < final_chunk) prefetch(o, last + 1, std::min(final_chunk, last + window));
  auto chunk_len = [&](std::uint64_t i) { return std::min(cs, f.attr.size - i * cs); };
  auto piece = [&](std::uint64_t i) {  // the part of chunk i this read wants: {object offset, length}
    std::uint64_t from = std::max(off, i * cs), to = std::min(off + len, (i + 1) * cs);
    return std::pair<std::uint64_t, std::size_t>(from, static_cast<std::size_t>(to - from));
  };
  auto st = ensure(
      o, first, last,
      [&](std::uint64_t i, const cache::ChunkRef& ref, bool waited) {
        // The chunk may be evicted while we copy: keep the copy only if it was still valid after.
        auto [at, n] = piece(i);
        // pread, not a copy from the mapping: a data file truncated under us is a short read
        // (fetched again, or read past the cache), never SIGBUS.
        ssize_t got = ::pread(o->fd, buf + (at - off), n, static_cast<off_t>(at));
        if (got != static_cast<ssize_t>(n) || !shared_->still_valid(ref) || !shared_->intact(*o, at, n))
          return false;
        shared_->count_served(*o, n, waited);
        // Folded into this process's check too: other chunks may come past the cache, or be
        // evicted before the object is whole in it (a model larger than the cache).
        if (!verified && check.state() == WholeCrc::State::pending) {
          if (auto server = shared_->server_crc(*o)) check.note_server(*server);
          check.add_known(i * cs, chunk_len(i), ref.crc64);
        }
        return true;
      },
      [&](std::uint64_t i) -> Status {
        auto [at, n] = piece(i);
        oss::ObjectInfo info;
        auto r = client_->get_range(f.path.bucket, f.path.key,
                                    oss::RangeRead{at, n, buf + (at - off), f.attr.etag}, &info);
        if (!r) return r.error();
        if (r.value() != n)
          return error_for("GetObject", f.path, EIO, "short read: object shorter than at open");
        shared_->count_uncached(n);
        return check_received(f, at, buf + (at - off), n, info.crc64);
      });
  if (!st) return st.error();
  if (auto st = damaged(); !st) {
    shared_->mark_damaged(*o);
    log::warn(st.error().to_string());
    return st.error();
  }
  f.next_sequential.store(off + len);
  return len;
}

Result<std::optional<Vfs::MapSource>> Vfs::map(OpenFile& f, std::uint64_t off, std::size_t len) {
  if (writer_of(f)) return std::optional<MapSource>();  // not an object yet: a private copy
  auto o = cached_object(f);
  if (!o || off >= f.attr.size) return std::optional<MapSource>();
  std::uint64_t cs = config_.chunk_size;
  std::uint64_t end = std::min<std::uint64_t>(off + len, f.attr.size);
  std::uint64_t first = off / cs, last = (end - 1) / cs;
  auto pin = shared_->pin(*o, first, last);
  if (!pin) {
    // Each rank then holds its own copy of the range (fetched once per node, through the cache):
    // worth a warning with the numbers, once per file.
    if (first_time("unpinned\n" + f.display)) {
      auto st = shared_->stats(false);
      log::warn("mmap " + f.display + ": " + util::format_size(end - off) +
                " cannot be pinned in the shared cache (budget " + util::format_size(st.budget) + ", " +
                util::format_size(st.pinned) +
                " already pinned by mappings, two chunks kept free); mapping a private copy, so this process "
                "holds its own " +
                util::format_size(end - off) +
                " of memory; to share the pages, raise OSSSHIM_CACHE_SIZE above " +
                util::format_size(st.pinned + (end - off) + 2 * config_.chunk_size));
    }
    return std::optional<MapSource>();
  }
  bool past_cache = false;
  auto st = ensure(
      o, first, last, [](std::uint64_t, const cache::ChunkRef&, bool) { return true; },  // pinned: stays
      [&](std::uint64_t) {
        past_cache = true;
        return ok_status();
      });
  if (!st || past_cache) {
    shared_->unpin(*pin);
    if (!st) return st.error();
    return std::optional<MapSource>();
  }
  shared_->count_served(*o, end - off, false);
  return std::optional<MapSource>(MapSource{o->fd, *pin});
}

void Vfs::unmap(std::uint32_t pin) {
  if (shared_) shared_->unpin(pin);
}

Status Vfs::warm(OpenFile& f, const std::function<void(std::uint64_t)>& progress) {
  if (f.attr.dir || f.attr.size == 0) return ok_status();
  auto o = cached_object(f);
  if (!o) return error_for("warm", f.path, ENOSPC, "the shared cache is not available");
  std::uint64_t cs = config_.chunk_size, chunks = (f.attr.size + cs - 1) / cs;
  std::uint64_t batch = std::max<std::uint64_t>(1, config_.concurrency);
  for (std::uint64_t first = 0; first < chunks; first += batch) {
    std::uint64_t last = std::min(chunks, first + batch) - 1;
    bool past_cache = false;
    auto st = ensure(
        o, first, last, [](std::uint64_t, const cache::ChunkRef&, bool) { return true; },
        [&](std::uint64_t) {
          past_cache = true;
          return ok_status();
        });
    if (!st) return st.error();
    if (past_cache)
      return error_for("warm", f.path, ENOSPC,
                       "the shared cache (" + util::format_size(shared_->budget()) +
                           ") has no room left: pinned or in flight; raise OSSSHIM_CACHE_SIZE");
    progress(std::min(f.attr.size, (last + 1) * cs) - first * cs);
  }
  return ok_status();
}

void Vfs::detach() {
  commit_all();
  if (shared_) shared_->detach();
}

}  // namespace ossshim::vfs
