#include <catch2/catch.hpp>
#include <cerrno>

#include "oss/errors.hpp"
#include "oss/xml.hpp"

using namespace ossshim;
using namespace ossshim::oss;

TEST_CASE("ListBucketResult with url-encoded keys and prefixes", "[xml]") {
  const char* body = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>a%2F</Prefix><MaxKeys>2</MaxKeys><Delimiter>%2F</Delimiter>
<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<NextContinuationToken>tok%3D</NextContinuationToken><KeyCount>3</KeyCount>
<Contents><Key>a/b+c%20d%2B%E4%B8%AD</Key><LastModified>2020-05-18T05:45:47.000Z</LastModified>
<ETag>&quot;35A2&quot;</ETag><Type>Normal</Type><Size>25</Size><StorageClass>Standard</StorageClass></Contents>
<CommonPrefixes><Prefix>a/sub%20dir/</Prefix></CommonPrefixes></ListBucketResult>)";
  ListPage page;
  REQUIRE(xml::parse_list(body, page).empty());
  REQUIRE(page.objects.size() == 1);
  CHECK(page.objects[0].key == "a/b c d+\xE4\xB8\xAD");
  CHECK(page.objects[0].size == 25);
  CHECK(page.objects[0].etag == "\"35A2\"");
  CHECK(page.objects[0].mtime == 1589780747);
  CHECK(page.common_prefixes == std::vector<std::string>{"a/sub dir/"});
  CHECK(page.truncated);
  CHECK(page.next_continuation_token == "tok%3D");  // opaque: passed back as received
}

TEST_CASE("listing keys are literal without EncodingType", "[xml]") {
  ListPage page;
  REQUIRE(xml::parse_list("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a+b%20</Key>"
                          "<Size>1</Size></Contents></ListBucketResult>",
                          page)
              .empty());
  CHECK(page.objects.at(0).key == "a+b%20");
}

TEST_CASE("malformed or inconsistent bodies are clear errors", "[xml]") {
  ListPage page;
  CHECK(xml::parse_list("<ListBucketResult><Contents>", page).find("malformed XML") == 0);
  CHECK(xml::parse_list("<Other/>", page) == "no ListBucketResult element");
  CHECK(xml::parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", page) ==
        "truncated listing without NextContinuationToken");
  CHECK(xml::parse_list(
            "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>bad%zz</Key></Contents>"
            "</ListBucketResult>",
            page)
            .find("undecodable key") == 0);
  std::string id;
  CHECK(xml::parse_initiate("<InitiateMultipartUploadResult/>", id) ==
        "no UploadId in InitiateMultipartUploadResult");
}

TEST_CASE("error bodies", "[xml]") {
  xml::ErrorBody e;
  REQUIRE(xml::parse_error(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
<RequestId>5C3D9175B6FC201293AD****</RequestId><HostId>b.oss.example</HostId><EC>0026-00000001</EC></Error>)",
                           e));
  CHECK(e.code == "NoSuchKey");
  CHECK(e.message == "The specified key does not exist.");
  CHECK(e.request_id == "5C3D9175B6FC201293AD****");
  CHECK_FALSE(xml::parse_error("not xml", e));
  CHECK_FALSE(xml::parse_error("<Other/>", e));
}

TEST_CASE("multipart documents", "[xml]") {
  std::string id;
  REQUIRE(xml::parse_initiate(
              "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
              "<UploadId>0004B999EF5A239BB9138C6227D6****</UploadId></InitiateMultipartUploadResult>",
              id)
              .empty());
  CHECK(id == "0004B999EF5A239BB9138C6227D6****");
  std::vector<UploadedPart> parts;
  int next = 0;
  bool truncated = true;
  REQUIRE(xml::parse_list_parts(
              "<ListPartsResult><NextPartNumberMarker>2</NextPartNumberMarker>"
              "<IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag>"
              "<HashCrc64ecma>123</HashCrc64ecma><Size>102400</Size></Part><Part><PartNumber>2"
              "</PartNumber><ETag>\"B\"</ETag><Size>5</Size></Part></ListPartsResult>",
              parts, next, truncated)
              .empty());
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].crc64 == 123u);
  CHECK_FALSE(parts[1].crc64);
  CHECK(next == 2);
  CHECK_FALSE(truncated);
  CHECK(xml::complete_body({{1, "\"A\"", 0, std::nullopt}, {2, "\"B\"", 0, std::nullopt}}) ==
        "<?xml "
        "version=\"1.0\"?><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag></"
        "Part><Part><PartNumber>2"
        "</PartNumber><ETag>\"B\"</ETag></Part></CompleteMultipartUpload>");
  std::string etag;
  REQUIRE(xml::parse_etag_result("<CopyObjectResult><ETag>\"E\"</ETag></CopyObjectResult>",
                                 "CopyObjectResult", etag)
              .empty());
  CHECK(etag == "\"E\"");
}

TEST_CASE("HTTP status and OSS code map to the errno a local file system gives", "[errno]") {
  CHECK(errno_for(404, "NoSuchKey") == ENOENT);
  CHECK(errno_for(404, "NoSuchBucket") == ENOENT);
  CHECK(errno_for(403, "AccessDenied") == EACCES);
  CHECK(errno_for(403, "SignatureDoesNotMatch") == EACCES);
  CHECK(errno_for(416, "InvalidRange") == EINVAL);
  CHECK(errno_for(412, "PreconditionFailed") == ESTALE);
  CHECK(errno_for(409, "FileAlreadyExists") == EEXIST);
  CHECK(errno_for(409, "BucketNotEmpty") == EBUSY);
  CHECK(errno_for(400, "InvalidArgument") == EINVAL);
  CHECK(errno_for(400, "EntityTooLarge") == EFBIG);
  CHECK(errno_for(500, "InternalError") == EIO);
  CHECK(errno_for(503, "ServiceUnavailable") == EIO);
  CHECK(errno_for(403, "QuotaExceeded") == EDQUOT);
  CHECK(errno_for(507, "") == ENOSPC);
  CHECK(errno_for(0, "") == EIO);
  CHECK(errno_for(200, "") == 0);
}
