#include "oss/client.hpp"

#include <algorithm>
#include <cerrno>
#include <tuple>

#include "http/transport.hpp"
#include "oss/errors.hpp"
#include "oss/xml.hpp"
#include "util/crc64.hpp"
#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossshim::oss {

namespace {

std::string target_of(const std::string& bucket, const std::string& key) {
  return "oss://" + bucket + "/" + key;
}

std::optional<std::uint64_t> header_u64(const http::Response& r, std::string_view name) {
  const std::string* v = r.header(name);
  if (!v || v->empty() || v->find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoull(*v);
}

class OssClient final : public Client {
 public:
  OssClient(const Config& config, auth::Credentials creds)
      : config_(config), creds_(std::move(creds)), http_(config) {
    std::size_t p = config.endpoint.find("://");
    scheme_ = config.endpoint.substr(0, p);
    host_ = config.endpoint.substr(p + 3);
    s3_ = config.signature == auth::Scheme::s3v4;
  }

  Result<ObjectInfo> head_object(const std::string& bucket, const std::string& key) override {
    http::Exchange x = exchange("HeadObject", "HEAD", bucket, key, {});
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    return info_from(r.value());
  }

  Result<std::size_t> get_range(const std::string& bucket, const std::string& key, const RangeRead& read,
                                ObjectInfo* info) override {
    if (read.length == 0) return std::size_t{0};
    http::Exchange x = exchange("GetObject", "GET", bucket, key, {});
    std::uint64_t last = read.offset + read.length - 1;
    x.request.set_header("Range", "bytes=" + std::to_string(read.offset) + "-" + std::to_string(last));
    if (!s3_) x.request.set_header("x-oss-range-behavior", "standard");
    if (!read.if_match.empty()) x.request.set_header("If-Match", read.if_match);
    x.sink = read.buffer;
    x.sink_write = read.write;
    x.sink_capacity = read.length;
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    const http::Response& resp = r.value();
    if (info) *info = info_from(resp);
    if (resp.status == 206) {
      // The range must be the one asked for (clamped at end of object only).
      const std::string* cr = resp.header("Content-Range");
      std::string want = "bytes " + std::to_string(read.offset) + "-";
      if (!cr || !cr->starts_with(want))
        return protocol_error(
            x, "Content-Range '" + (cr ? *cr : "") + "' does not start at " + std::to_string(read.offset));
      return resp.sink_bytes;
    }
    // A 200 means the server ignored the range: acceptable only if the whole object was asked for.
    auto total = header_u64(resp, "Content-Length");
    if (read.offset == 0 && total && *total <= read.length && resp.sink_bytes == *total)
      return resp.sink_bytes;
    return protocol_error(x, "server answered a range request with HTTP " + std::to_string(resp.status));
  }

  Result<ListPage> list_objects(const std::string& bucket, const ListRequest& req) override {
    std::vector<QueryParam> q = {
        {"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", std::to_string(req.max_keys)}};
    if (!req.prefix.empty()) q.push_back({"prefix", req.prefix});
    if (!req.delimiter.empty()) q.push_back({"delimiter", req.delimiter});
    if (!req.continuation_token.empty()) q.push_back({"continuation-token", req.continuation_token});
    if (!req.start_after.empty()) q.push_back({"start-after", req.start_after});
    http::Exchange x = exchange("ListObjectsV2", "GET", bucket, "", std::move(q));
    x.target = "oss://" + bucket + "/" + req.prefix;
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    ListPage page;
    if (std::string why = xml::parse_list(r.value().body, page); !why.empty()) return protocol_error(x, why);
    return page;
  }

  Result<PutResult> put_object(const std::string& bucket, const std::string& key, std::string_view body,
                               const WriteOptions& options) override {
    http::Exchange x = exchange("PutObject", "PUT", bucket, key, {});
    x.request.set_header("Content-MD5", util::base64_encode(util::md5(body)));
    forbid_overwrite(x, options);
    x.body = body;
    auto r = http_.execute(x);
    if (auto e = failure(x, r, options)) return *e;
    PutResult out = put_result(r.value());
    if (auto e = check_crc(x, out.crc64, util::crc64_update(0, body.data(), body.size()))) return *e;
    return out;
  }

  Status delete_object(const std::string& bucket, const std::string& key) override {
    http::Exchange x = exchange("DeleteObject", "DELETE", bucket, key, {});
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    return ok_status();
  }

  Result<PutResult> put_symlink(const std::string& bucket, const std::string& key, const std::string& target,
                                const WriteOptions& options) override {
    http::Exchange x = exchange("PutSymlink", "PUT", bucket, key, {{"symlink", ""}});
    if (s3_) return no_symlinks(x);
    x.request.set_header("x-oss-symlink-target", util::uri_encode(target, true));
    forbid_overwrite(x, options);
    auto r = http_.execute(x);
    if (auto e = failure(x, r, options)) return *e;
    return put_result(r.value());
  }

  Result<SymlinkInfo> get_symlink(const std::string& bucket, const std::string& key) override {
    http::Exchange x = exchange("GetSymlink", "GET", bucket, key, {{"symlink", ""}});
    if (s3_) return no_symlinks(x);
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    const std::string* raw = r.value().header("x-oss-symlink-target");
    SymlinkInfo out;
    if (!raw || !util::uri_decode(*raw, out.target, false) || out.target.empty())
      return protocol_error(x, "GetSymlink response without a valid x-oss-symlink-target header");
    if (const std::string* etag = r.value().header("ETag")) out.etag = *etag;
    if (const std::string* lm = r.value().header("Last-Modified"))
      if (auto t = util::parse_rfc1123(*lm)) out.mtime = *t;
    return out;
  }

  Result<PutResult> copy_object(const std::string& src_bucket, const std::string& src_key,
                                const std::string& dst_bucket, const std::string& dst_key,
                                const WriteOptions& options) override {
    http::Exchange x = exchange("CopyObject", "PUT", dst_bucket, dst_key, {});
    x.request.set_header(copy_header(""), copy_source(src_bucket, src_key));
    forbid_overwrite(x, options);
    auto r = http_.execute(x);
    if (auto e = failure(x, r, options)) return *e;
    PutResult out = put_result(r.value());
    if (std::string why = xml::parse_etag_result(r.value().body, "CopyObjectResult", out.etag); !why.empty())
      return protocol_error(x, why);
    return out;
  }

  Result<std::string> initiate_multipart(const std::string& bucket, const std::string& key,
                                         const WriteOptions& options) override {
    http::Exchange x = exchange("InitiateMultipartUpload", "POST", bucket, key, {{"uploads", ""}});
    // S3's CreateMultipartUpload takes no conditional headers: there, only completion checks.
    if (!s3_) forbid_overwrite(x, options);
    auto r = http_.execute(x);
    if (auto e = failure(x, r, options)) return *e;
    std::string id;
    if (std::string why = xml::parse_initiate(r.value().body, id); !why.empty())
      return protocol_error(x, why);
    return id;
  }

  Result<UploadedPart> upload_part(const std::string& bucket, const std::string& key,
                                   const std::string& upload_id, int part_number,
                                   std::string_view body) override {
    http::Exchange x = exchange("UploadPart", "PUT", bucket, key,
                                {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}});
    x.request.set_header("Content-MD5", util::base64_encode(util::md5(body)));
    x.body = body;
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    UploadedPart part;
    part.part_number = part_number;
    part.size = body.size();
    const std::string* etag = r.value().header("ETag");
    if (!etag) return protocol_error(x, "no ETag in UploadPart response");
    part.etag = *etag;
    std::uint64_t crc = util::crc64_update(0, body.data(), body.size());
    if (auto e = check_crc(x, header_u64(r.value(), "x-oss-hash-crc64ecma"), crc)) return *e;
    part.crc64 = crc;
    return part;
  }

  Result<UploadedPart> upload_part_copy(const std::string& bucket, const std::string& key,
                                        const std::string& upload_id, int part_number,
                                        const std::string& src_bucket, const std::string& src_key,
                                        std::uint64_t first, std::uint64_t last,
                                        const std::string& src_if_match) override {
    http::Exchange x = exchange("UploadPartCopy", "PUT", bucket, key,
                                {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}});
    x.target += " part " + std::to_string(part_number) + " from " + target_of(src_bucket, src_key);
    if (last < first) {
      Error e;
      e.err = EINVAL;
      e.op = x.op;
      e.target = x.target;
      e.message = "empty source range " + std::to_string(first) + "-" + std::to_string(last);
      return e;
    }
    x.request.set_header(copy_header(""), copy_source(src_bucket, src_key));
    x.request.set_header(copy_header("-range"),
                         "bytes=" + std::to_string(first) + "-" + std::to_string(last));
    if (!src_if_match.empty()) x.request.set_header(copy_header("-if-match"), src_if_match);
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    UploadedPart part;
    part.part_number = part_number;
    part.size = last - first + 1;
    if (std::string why = xml::parse_etag_result(r.value().body, "CopyPartResult", part.etag); !why.empty())
      return protocol_error(x, why);
    part.crc64 = header_u64(r.value(), "x-oss-hash-crc64ecma");
    return part;
  }

  Result<PutResult> complete_multipart(const std::string& bucket, const std::string& key,
                                       const std::string& upload_id, const std::vector<UploadedPart>& parts,
                                       const WriteOptions& options) override {
    http::Exchange x = exchange("CompleteMultipartUpload", "POST", bucket, key, {{"uploadId", upload_id}});
    std::string body = xml::complete_body(parts);
    x.request.set_header("Content-Type", "application/xml");
    forbid_overwrite(x, options);
    x.body = body;
    auto r = http_.execute(x);
    if (auto e = failure(x, r, options)) return *e;
    PutResult out = put_result(r.value());
    xml::parse_etag_result(r.value().body, "CompleteMultipartUploadResult", out.etag);
    // The whole object's CRC must be the combination of the parts' CRCs.
    bool all_known = !parts.empty();
    std::uint64_t combined = 0;
    for (const auto& p : parts) {
      if (!p.crc64)
        all_known = false;
      else
        combined = util::crc64_combine(combined, *p.crc64, p.size);
    }
    if (all_known)
      if (auto e = check_crc(x, out.crc64, combined)) return *e;
    return out;
  }

  Status abort_multipart(const std::string& bucket, const std::string& key,
                         const std::string& upload_id) override {
    http::Exchange x = exchange("AbortMultipartUpload", "DELETE", bucket, key, {{"uploadId", upload_id}});
    auto r = http_.execute(x);
    if (auto e = failure(x, r)) return *e;
    return ok_status();
  }

  Result<std::vector<UploadedPart>> list_parts(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id) override {
    std::vector<UploadedPart> parts;
    int marker = 0;
    for (;;) {
      std::vector<QueryParam> q = {{"uploadId", upload_id}};
      if (marker) q.push_back({"part-number-marker", std::to_string(marker)});
      http::Exchange x = exchange("ListParts", "GET", bucket, key, std::move(q));
      auto r = http_.execute(x);
      if (auto e = failure(x, r)) return *e;
      bool truncated = false;
      int next = 0;
      if (std::string why = xml::parse_list_parts(r.value().body, parts, next, truncated); !why.empty())
        return protocol_error(x, why);
      if (!truncated) return parts;
      if (next <= marker) return protocol_error(x, "ListParts marker did not advance");
      marker = next;
    }
  }

  Result<std::vector<MultipartUpload>> list_multipart_uploads(const std::string& bucket,
                                                              const std::string& prefix,
                                                              int page_size) override {
    std::vector<MultipartUpload> uploads;
    std::string key_marker, id_marker;
    for (;;) {
      std::vector<QueryParam> q = {{"uploads", ""},
                                   {"encoding-type", "url"},
                                   {"max-uploads", std::to_string(std::clamp(page_size, 1, 1000))}};
      if (!prefix.empty()) q.push_back({"prefix", prefix});
      if (!key_marker.empty()) q.push_back({"key-marker", key_marker});
      if (!id_marker.empty()) q.push_back({"upload-id-marker", id_marker});
      http::Exchange x = exchange("ListMultipartUploads", "GET", bucket, "", std::move(q));
      x.target = target_of(bucket, prefix);
      auto r = http_.execute(x);
      if (auto e = failure(x, r)) return *e;
      xml::UploadsPage page;
      if (std::string why = xml::parse_list_uploads(r.value().body, page); !why.empty())
        return protocol_error(x, why);
      for (auto& u : page.uploads) uploads.push_back(std::move(u));
      if (!page.truncated) return uploads;
      if (std::tie(page.next_key_marker, page.next_upload_id_marker) <= std::tie(key_marker, id_marker))
        return protocol_error(x, "ListMultipartUploads markers did not advance");
      key_marker = std::move(page.next_key_marker);
      id_marker = std::move(page.next_upload_id_marker);
    }
  }

 private:
  // Builds the wire request: addressing style, escaped path, query string, signer.
  http::Exchange exchange(const char* op, const char* method, const std::string& bucket,
                          const std::string& key, std::vector<QueryParam> query) {
    http::Exchange x;
    x.op = op;
    x.target = target_of(bucket, key);
    Request& r = x.request;
    r.method = method;
    r.bucket = bucket;
    r.key = key;
    r.query = std::move(query);
    std::string escaped = util::uri_encode(key, true);
    if (config_.addressing == Addressing::virtual_hosted) {
      r.host = bucket + "." + host_;
      r.path = "/" + escaped;
    } else {
      r.host = host_;
      r.path = "/" + bucket + "/" + escaped;
    }
    std::string qs;
    for (const auto& p : r.query) {
      qs += qs.empty() ? "?" : "&";
      qs += util::uri_encode(p.name, false);
      if (!p.value.empty()) qs += "=" + util::uri_encode(p.value, false);
    }
    x.url = scheme_ + "://" + r.host + r.path + qs;
    x.error_code = [](const http::Response& resp) { return error_body(resp).code; };
    x.sign = [this](Request& req, std::time_t now) {
      auth::sign(req, creds_, auth::SignOptions{config_.signature, config_.region}, now);
    };
    return x;
  }

  // x-oss-forbid-overwrite (OSS) or If-None-Match: * (S3) when the caller asks not to replace.
  void forbid_overwrite(http::Exchange& x, const WriteOptions& options) const {
    if (!options.forbid_overwrite) return;
    if (s3_)
      x.request.set_header("If-None-Match", "*");
    else
      x.request.set_header("x-oss-forbid-overwrite", "true");
  }

  // "x-oss-copy-source<suffix>" (or x-amz- for S3) and its value "/bucket/escaped-key".
  std::string copy_header(const char* suffix) const {
    return std::string(s3_ ? "x-amz-copy-source" : "x-oss-copy-source") + suffix;
  }
  static std::string copy_source(const std::string& bucket, const std::string& key) {
    return "/" + bucket + "/" + util::uri_encode(key, true);
  }

  // As below; a write that was told not to replace an object and got S3's 412 for its
  // If-None-Match: * found the key taken (OSS says 409 FileAlreadyExists, mapped by errno_for).
  std::optional<Error> failure(const http::Exchange& x, const Result<http::Response>& r,
                               const WriteOptions& options) const {
    auto e = failure(x, r);
    if (e && options.forbid_overwrite && s3_ && e->http_status == 412) e->err = EEXIST;
    return e;
  }

  // An HTTP error status or transport failure as an Error; nullopt for success.
  std::optional<Error> failure(const http::Exchange& x, const Result<http::Response>& r) const {
    if (!r.ok()) return r.error();
    const http::Response& resp = r.value();
    if (resp.status >= 200 && resp.status < 300) return std::nullopt;
    Error e;
    e.op = x.op;
    e.target = x.target;
    e.http_status = resp.status;
    xml::ErrorBody body = error_body(resp);
    e.code = body.code;
    e.message = body.message;
    e.request_id = body.request_id;
    if (e.request_id.empty())
      if (const std::string* rid = resp.header("x-oss-request-id")) e.request_id = *rid;
    if (e.code.empty() && resp.status == 404) e.code = "NoSuchKey";
    e.err = errno_for(resp.status, e.code);
    return e;
  }

  // The error document of a response: its body, or for HEAD the base64 x-oss-err header.
  static xml::ErrorBody error_body(const http::Response& resp) {
    xml::ErrorBody body;
    std::string decoded;
    const std::string* err_header = resp.header("x-oss-err");
    if (!xml::parse_error(resp.body, body) && err_header && util::base64_decode(*err_header, decoded))
      xml::parse_error(decoded, body);
    return body;
  }

  static Error no_symlinks(const http::Exchange& x) {
    Error e;
    e.err = EPERM;
    e.op = x.op;
    e.target = x.target;
    e.message = "S3-compatible stores have no symlink objects (OSSSHIM_SIGNATURE=s3v4); use an OSS endpoint";
    return e;
  }

  Error protocol_error(const http::Exchange& x, const std::string& why) const {
    Error e;
    e.err = EIO;
    e.op = x.op;
    e.target = x.target;
    e.code = "unexpected response";
    e.message = why;
    return e;
  }

  std::optional<Error> check_crc(const http::Exchange& x, std::optional<std::uint64_t> server,
                                 std::uint64_t ours) const {
    if (!server || *server == ours) return std::nullopt;
    Error e =
        protocol_error(x, "upload integrity: CRC64 mismatch: the server reports " + std::to_string(*server) +
                              " for what it stored, the data sent has " + std::to_string(ours));
    e.code = kCrcMismatch;  // the object may be stored: callers remove it
    return e;
  }

  static ObjectInfo info_from(const http::Response& r) {
    ObjectInfo info;
    const std::string* range = r.header("Content-Range");
    if (range && range->find('/') != std::string::npos) {
      info.size = std::stoull(range->substr(range->find('/') + 1));
    } else if (auto len = header_u64(r, "Content-Length")) {
      info.size = *len;
    }
    if (const std::string* lm = r.header("Last-Modified"))
      if (auto t = util::parse_rfc1123(*lm)) info.mtime = *t;
    if (const std::string* etag = r.header("ETag")) info.etag = *etag;
    info.crc64 = header_u64(r, "x-oss-hash-crc64ecma");
    if (const std::string* t = r.header("x-oss-object-type")) info.object_type = *t;
    if (const std::string* t = r.header("Content-Type")) info.content_type = *t;
    return info;
  }

  static PutResult put_result(const http::Response& r) {
    PutResult out;
    if (const std::string* etag = r.header("ETag")) out.etag = *etag;
    out.crc64 = header_u64(r, "x-oss-hash-crc64ecma");
    return out;
  }

  Config config_;
  auth::Credentials creds_;
  http::Transport http_;
  std::string scheme_, host_;
  bool s3_ = false;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::create(const Config& config, auth::Credentials creds) {
  if (config.endpoint.find("://") == std::string::npos) {
    Error e;
    e.err = EINVAL;
    e.op = "config";
    e.target = "OSSSHIM_ENDPOINT";
    e.message = "endpoint '" + config.endpoint + "' has no scheme; load it through load_config";
    return e;
  }
  return std::unique_ptr<Client>(new OssClient(config, std::move(creds)));
}

}  // namespace ossshim::oss
