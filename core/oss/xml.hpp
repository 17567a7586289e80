// OSS XML bodies (pugixml): parse responses, build the CompleteMultipartUpload request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oss/client.hpp"

namespace ossshim::oss::xml {

struct ErrorBody {
  std::string code, message, request_id;
};
// Returns false when the body is not an OSS <Error> document.
bool parse_error(std::string_view body, ErrorBody& out);

// Each returns an empty string on success, else what was wrong with the document.
std::string parse_list(std::string_view body, ListPage& out);
std::string parse_initiate(std::string_view body, std::string& upload_id);
std::string parse_etag_result(std::string_view body, const char* root, std::string& etag);
std::string parse_list_parts(std::string_view body, std::vector<UploadedPart>& parts, int& next_marker,
                             bool& truncated);
// One page of ListMultipartUploads; keys and the next key marker come back decoded.
struct UploadsPage {
  std::vector<MultipartUpload> uploads;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};
std::string parse_list_uploads(std::string_view body, UploadsPage& out);
std::string complete_body(const std::vector<UploadedPart>& parts);

}  // namespace ossshim::oss::xml
