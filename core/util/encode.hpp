// Byte encodings and digests used by signers, the client and the emulator.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ossshim::util {

// Percent-encode every byte except A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash), uppercase hex.
// This is OSS's escapePath (keep_slash) and the V4/SigV4 query encoding (!keep_slash).
std::string uri_encode(std::string_view in, bool keep_slash);
// Decode %XX sequences; when plus_is_space, '+' becomes ' ' (form/query style).
// Returns false on a malformed escape.
bool uri_decode(std::string_view in, std::string& out, bool plus_is_space);

std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string& out);

std::string hex_lower(std::string_view bytes);
std::string hex_upper(std::string_view bytes);

// Raw (binary) digests.
std::string hmac_sha1(std::string_view key, std::string_view msg);
std::string hmac_sha256(std::string_view key, std::string_view msg);
std::string sha256(std::string_view data);
std::string md5(std::string_view data);

// Case-insensitive ASCII compare and lower-casing, for header names.
bool iequals(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);
std::string_view trim(std::string_view s);

}  // namespace ossshim::util
