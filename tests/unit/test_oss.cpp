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

TEST_CASE("write refusals map to the errno a local file system gives", "[errno]") {
  // Quotas someone set: EDQUOT, whatever status the store uses for them.
  CHECK(errno_for(403, "QuotaExceeded") == EDQUOT);                   // Ceph RGW, versitygw
  CHECK(errno_for(400, "XMinioAdminBucketQuotaExceeded") == EDQUOT);  // MinIO bucket quota
  CHECK(errno_for(403, "InsufficientStorageSpace") == EDQUOT);        // Huawei OBS bucket quota
  // Out of space: ENOSPC, by code or by 507 alone.
  CHECK(errno_for(507, "InsufficientStorage") == ENOSPC);
  CHECK(errno_for(507, "XMinioStorageFull") == ENOSPC);
  CHECK(errno_for(507, "SomethingElse") == ENOSPC);
  CHECK(errno_for(503, "InsufficientStorage") == ENOSPC);
  // Too large: EFBIG by code (OSS: 400) or by 413.
  CHECK(errno_for(400, "EntityTooLarge") == EFBIG);
  CHECK(errno_for(413, "") == EFBIG);
  CHECK(errno_for(400, "EntityTooSmall") == EINVAL);
  // The key exists and the write asked not to replace it (OSS). S3's 412 is mapped by the client,
  // which knows the request carried If-None-Match: *.
  CHECK(errno_for(409, "FileAlreadyExists") == EEXIST);
  CHECK(errno_for(412, "PreconditionFailed") == ESTALE);
  // A body that did not arrive as sent (Content-MD5): an I/O error, not a bad argument.
  CHECK(errno_for(400, "InvalidDigest") == EIO);
  CHECK(errno_for(400, "BadDigest") == EIO);
  CHECK(errno_for(404, "NoSuchUpload") == ENOENT);
  CHECK(errno_for(400, "InvalidPart") == EINVAL);
}

TEST_CASE("ListMultipartUploadsResult pages with url-encoded keys and markers", "[xml]") {
  xml::UploadsPage page;
  REQUIRE(xml::parse_list_uploads(
              R"(<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult><Bucket>b</Bucket><EncodingType>url</EncodingType>
<KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>ckpt%2Fa%20b%2Bc</NextKeyMarker>
<NextUploadIdMarker>0004B999EF5A239BB9138C6227D6****</NextUploadIdMarker><Prefix>ckpt%2F</Prefix>
<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
<Upload><Key>ckpt%2F%E4%B8%AD</Key><UploadId>0004B999EF518A1FE585B0C9360D****</UploadId>
<StorageClass>Standard</StorageClass><Initiated>2012-02-23T04:18:23.000Z</Initiated></Upload>
<Upload><Key>ckpt%2Fa%20b%2Bc</Key><UploadId>0004B999EF5A239BB9138C6227D6****</UploadId>
<Initiated>2012-02-23T06:14:27.000Z</Initiated></Upload></ListMultipartUploadsResult>)",
              page)
              .empty());
  REQUIRE(page.uploads.size() == 2);
  CHECK(page.uploads[0].key == "ckpt/\xE4\xB8\xAD");
  CHECK(page.uploads[0].upload_id == "0004B999EF518A1FE585B0C9360D****");
  CHECK(page.uploads[0].initiated == 1329970703);
  CHECK(page.uploads[1].key == "ckpt/a b+c");
  CHECK(page.truncated);
  CHECK(page.next_key_marker == "ckpt/a b+c");  // decoded; the client encodes it again in the query
  CHECK(page.next_upload_id_marker == "0004B999EF5A239BB9138C6227D6****");

  xml::UploadsPage literal;
  REQUIRE(
      xml::parse_list_uploads("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload>"
                              "<Key>a%20b</Key><UploadId>X</UploadId></Upload></ListMultipartUploadsResult>",
                              literal)
          .empty());
  CHECK(literal.uploads.at(0).key == "a%20b");
  CHECK_FALSE(literal.truncated);

  xml::UploadsPage bad;
  CHECK(xml::parse_list_uploads("<Other/>", bad) == "no ListMultipartUploadsResult element");
  CHECK(xml::parse_list_uploads("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                "</ListMultipartUploadsResult>",
                                bad) == "truncated upload listing without NextKeyMarker");
  CHECK(xml::parse_list_uploads("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
                                "</ListMultipartUploadsResult>",
                                bad) == "Upload without UploadId");
  CHECK(xml::parse_list_uploads("<ListMultipartUploadsResult", bad).find("malformed XML") == 0);
}

TEST_CASE("CopyPartResult carries the part's ETag", "[xml]") {
  std::string etag;
  REQUIRE(xml::parse_etag_result("<CopyPartResult><LastModified>2014-07-17T06:27:54.000Z</LastModified>"
                                 "<ETag>\"5B2EF6D1DB8C8A7B9B4A3F1C0E5A\"</ETag></CopyPartResult>",
                                 "CopyPartResult", etag)
              .empty());
  CHECK(etag == "\"5B2EF6D1DB8C8A7B9B4A3F1C0E5A\"");
  CHECK(xml::parse_etag_result("<CopyPartResult/>", "CopyPartResult", etag) == "no ETag in CopyPartResult");
}
