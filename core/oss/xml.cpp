#include "oss/xml.hpp"

#include <pugixml.hpp>

#include "util/encode.hpp"
#include "util/time.hpp"

namespace ossshim::oss::xml {

namespace {

bool load(pugi::xml_document& doc, std::string_view body, std::string& why) {
  pugi::xml_parse_result r = doc.load_buffer(body.data(), body.size());
  if (!r) why = std::string("malformed XML: ") + r.description() + " at offset " + std::to_string(r.offset);
  return static_cast<bool>(r);
}

std::string text(const pugi::xml_node& n, const char* child) {
  return n.child(child).text().as_string();
}

// Keys in listings are URL-encoded when encoding-type=url was requested (and echoed).
bool decode(bool url, const std::string& in, std::string& out) {
  if (!url) {
    out = in;
    return true;
  }
  return util::uri_decode(in, out, true);
}

}  // namespace

bool parse_error(std::string_view body, ErrorBody& out) {
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size())) return false;
  pugi::xml_node e = doc.child("Error");
  if (!e) return false;
  out.code = text(e, "Code");
  out.message = text(e, "Message");
  out.request_id = text(e, "RequestId");
  return true;
}

std::string parse_list(std::string_view body, ListPage& out) {
  pugi::xml_document doc;
  std::string why;
  if (!load(doc, body, why)) return why;
  pugi::xml_node root = doc.child("ListBucketResult");
  if (!root) return "no ListBucketResult element";
  bool url = text(root, "EncodingType") == "url";
  out.truncated = text(root, "IsTruncated") == "true";
  out.next_continuation_token = text(root, "NextContinuationToken");
  if (out.truncated && out.next_continuation_token.empty())
    return "truncated listing without NextContinuationToken";
  for (pugi::xml_node c : root.children("Contents")) {
    ObjectSummary o;
    if (!decode(url, text(c, "Key"), o.key)) return "undecodable key '" + text(c, "Key") + "'";
    o.size = c.child("Size").text().as_ullong();
    o.etag = text(c, "ETag");
    o.type = text(c, "Type");
    if (auto t = util::parse_iso8601(text(c, "LastModified"))) o.mtime = *t;
    out.objects.push_back(std::move(o));
  }
  for (pugi::xml_node p : root.children("CommonPrefixes")) {
    std::string prefix;
    if (!decode(url, text(p, "Prefix"), prefix)) return "undecodable prefix '" + text(p, "Prefix") + "'";
    out.common_prefixes.push_back(std::move(prefix));
  }
  return "";
}

std::string parse_initiate(std::string_view body, std::string& upload_id) {
  pugi::xml_document doc;
  std::string why;
  if (!load(doc, body, why)) return why;
  upload_id = text(doc.child("InitiateMultipartUploadResult"), "UploadId");
  return upload_id.empty() ? "no UploadId in InitiateMultipartUploadResult" : "";
}

std::string parse_etag_result(std::string_view body, const char* root, std::string& etag) {
  pugi::xml_document doc;
  std::string why;
  if (!load(doc, body, why)) return why;
  etag = text(doc.child(root), "ETag");
  return etag.empty() ? std::string("no ETag in ") + root : "";
}

std::string parse_list_parts(std::string_view body, std::vector<UploadedPart>& parts, int& next_marker,
                             bool& truncated) {
  pugi::xml_document doc;
  std::string why;
  if (!load(doc, body, why)) return why;
  pugi::xml_node root = doc.child("ListPartsResult");
  if (!root) return "no ListPartsResult element";
  truncated = text(root, "IsTruncated") == "true";
  next_marker = root.child("NextPartNumberMarker").text().as_int();
  for (pugi::xml_node p : root.children("Part")) {
    UploadedPart part;
    part.part_number = p.child("PartNumber").text().as_int();
    part.etag = text(p, "ETag");
    part.size = p.child("Size").text().as_ullong();
    if (p.child("HashCrc64ecma")) part.crc64 = p.child("HashCrc64ecma").text().as_ullong();
    parts.push_back(std::move(part));
  }
  return "";
}

std::string parse_list_uploads(std::string_view body, UploadsPage& out) {
  pugi::xml_document doc;
  std::string why;
  if (!load(doc, body, why)) return why;
  pugi::xml_node root = doc.child("ListMultipartUploadsResult");
  if (!root) return "no ListMultipartUploadsResult element";
  bool url = text(root, "EncodingType") == "url";
  out.truncated = text(root, "IsTruncated") == "true";
  if (!decode(url, text(root, "NextKeyMarker"), out.next_key_marker))
    return "undecodable NextKeyMarker '" + text(root, "NextKeyMarker") + "'";
  out.next_upload_id_marker = text(root, "NextUploadIdMarker");
  if (out.truncated && out.next_key_marker.empty() && out.next_upload_id_marker.empty())
    return "truncated upload listing without NextKeyMarker";
  for (pugi::xml_node u : root.children("Upload")) {
    MultipartUpload m;
    if (!decode(url, text(u, "Key"), m.key)) return "undecodable key '" + text(u, "Key") + "'";
    m.upload_id = text(u, "UploadId");
    if (m.upload_id.empty()) return "Upload without UploadId";
    if (auto t = util::parse_iso8601(text(u, "Initiated"))) m.initiated = *t;
    out.uploads.push_back(std::move(m));
  }
  return "";
}

std::string complete_body(const std::vector<UploadedPart>& parts) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("CompleteMultipartUpload");
  for (const auto& p : parts) {
    pugi::xml_node part = root.append_child("Part");
    part.append_child("PartNumber").text().set(p.part_number);
    part.append_child("ETag").text().set(p.etag.c_str());
  }
  struct Writer : pugi::xml_writer {
    std::string out;
    void write(const void* data, size_t size) override { out.append(static_cast<const char*>(data), size); }
  } w;
  doc.save(w, "", pugi::format_raw);
  return w.out;
}

}  // namespace ossshim::oss::xml
