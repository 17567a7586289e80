// The OpenSSL-backed encodings and digests of encode.hpp. Kept apart from encode.cpp so that
// libossshim.so can leave them (and libcrypto) to libossshim-net.so, loaded on first use.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/encode.hpp"

namespace ossshim::util {

namespace {
std::string hmac(const EVP_MD* md, std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  out.assign(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts padding as zero bytes: drop them.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = (text.size() >= 2 && text[text.size() - 2] == '=') ? 2 : 1;
  out.resize(static_cast<std::size_t>(n) - pad);
  return true;
}

std::string hmac_sha1(std::string_view key, std::string_view msg) {
  return hmac(EVP_sha1(), key, msg);
}
std::string hmac_sha256(std::string_view key, std::string_view msg) {
  return hmac(EVP_sha256(), key, msg);
}
std::string sha256(std::string_view data) {
  return digest(EVP_sha256(), data);
}
std::string md5(std::string_view data) {
  return digest(EVP_md5(), data);
}

}  // namespace ossshim::util
