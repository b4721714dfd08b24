// JPEG encode/decode between packed BGR buffers and JPEG bytes (synchronous).
// Decoding reads the JPEG header first and refuses pictures above the limit.
#include <climits>
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "lancam.h"

namespace lancam {

namespace {

// JPEG marker codes (ITU T.81 table B.1); lib/jpeg-header.ts draws the layout.
constexpr uchar kMarker = 0xff;
constexpr uchar kSoi = 0xd8, kEoi = 0xd9, kSos = 0xda, kTem = 0x01, kRst0 = 0xd0, kRst7 = 0xd7;
constexpr uchar kSof0 = 0xc0, kSof15 = 0xcf, kDht = 0xc4, kJpg = 0xc8, kDac = 0xcc;
// Frame header offsets from its length field.
constexpr size_t kSofHeight = 3, kSofWidth = 5, kSofComponents = 7, kSofFixedLength = 8;

int ReadU16(const uchar* p) { return (p[0] << 8) | p[1]; }

// Per thread rather than per call: a fresh buffer per frame costs a page fault
// per 4 KiB. thread_local because Bun workers share this library's statics.
thread_local std::vector<uchar> tlsJpeg;

std::string HexPrefix(const uchar* data, size_t size) {
  std::string out;
  char byte[4];
  for (size_t i = 0; i < size && i < 4; i++) {
    std::snprintf(byte, sizeof byte, "%s%02x", i ? " " : "", data[i]);
    out += byte;
  }
  return out.empty() ? "nothing" : out;
}

std::string NotDecodable(const uchar* data, size_t size) {
  return "not a decodable image (" + std::to_string(size) + " bytes, starting with " + HexPrefix(data, size) + ")";
}

}  // namespace

bool ReadJpegSize(const uchar* data, size_t size, int* width, int* height) {
  if (size < 2 || data[0] != kMarker || data[1] != kSoi) return false;
  // Every pass moves pos forward by at least one byte.
  size_t pos = 2;
  while (pos < size) {
    if (data[pos] != kMarker) return false;
    while (pos < size && data[pos] == kMarker) pos++;  // fill bytes
    if (pos >= size) return false;
    uchar code = data[pos++];
    if (code == kTem || (code >= kRst0 && code <= kRst7)) continue;
    if (code == 0 || code == kSoi || code == kEoi || code == kSos) return false;
    if (size - pos < 2) return false;
    size_t length = ReadU16(data + pos);
    if (length < 2 || size - pos < length) return false;
    bool sof = code >= kSof0 && code <= kSof15 && code != kDht && code != kJpg && code != kDac;
    if (!sof) {
      pos += length;
      continue;
    }
    if (length < kSofFixedLength) return false;
    size_t components = data[pos + kSofComponents];
    // libjpeg refuses any other length, and a frame without components or with a zero side.
    if (components == 0 || length != kSofFixedLength + 3 * components) return false;
    int h = ReadU16(data + pos + kSofHeight);
    int w = ReadU16(data + pos + kSofWidth);
    if (w == 0 || h == 0) return false;
    *width = w;
    *height = h;
    return true;
  }
  return false;
}

// JPEG only, although OpenCV reads more formats: the header check is what bounds
// the allocation, and every other format would bypass it.
cv::Mat DecodeJpegBgr(const uchar* data, size_t size, std::string* why) {
  auto refuse = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return cv::Mat();
  };
  int width = 0;
  int height = 0;
  if (size > static_cast<size_t>(INT_MAX) || !ReadJpegSize(data, size, &width, &height)) {
    return refuse(NotDecodable(data, size));
  }
  if (width > kMaxDecodeWidth || height > kMaxDecodeHeight) {
    return refuse("JPEG of " + std::to_string(width) + "x" + std::to_string(height) + " exceeds the " +
                  std::to_string(kMaxDecodeWidth) + "x" + std::to_string(kMaxDecodeHeight) + " limit");
  }
  cv::Mat bytes(1, static_cast<int>(size), CV_8UC1, const_cast<uchar*>(data));
  // Not imdecode(buf, flags, &dst) into a reused Mat: in OpenCV 4.6 it returns dst
  // unchanged when libjpeg rejects the header, so a bad frame would "decode" as the
  // previous one. The plain overload is empty on every failure, and glibc hands the
  // freed block back on the next call (measured: 0.2 page faults per 720p jpegInfo).
  cv::Mat image = cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (image.empty()) return refuse(NotDecodable(data, size));
  return image;
}

namespace {

// encodeJpeg(bgr: Uint8Array, width, height, quality): Buffer
Napi::Value EncodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bgr = Uint8ArrayArg(info, 0, "encodeJpeg", "bgr");
  int width = Int32Arg(info, 1, "encodeJpeg", "width");
  int height = Int32Arg(info, 2, "encodeJpeg", "height");
  int quality = Int32Arg(info, 3, "encodeJpeg", "quality");
  if (width <= 0 || height <= 0) throw Napi::RangeError::New(env, "encodeJpeg: width and height must be positive");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "encodeJpeg: quality must be 1..100");
  size_t expected = static_cast<size_t>(width) * height * 3;
  if (bgr.ByteLength() != expected) {
    throw Napi::RangeError::New(env, "encodeJpeg: expected " + std::to_string(expected) + " bytes of BGR for " +
                                         std::to_string(width) + "x" + std::to_string(height) + ", got " +
                                         std::to_string(bgr.ByteLength()));
  }
  return Guard(env, "encodeJpeg", [&]() -> Napi::Value {
    // A header over the caller's bytes: no copy on the way in.
    cv::Mat image(height, width, CV_8UC3, bgr.Data());
    if (!cv::imencode(".jpg", image, tlsJpeg, {cv::IMWRITE_JPEG_QUALITY, quality})) {
      throw Napi::Error::New(env, "encodeJpeg: OpenCV could not encode the image");
    }
    return Napi::Buffer<uchar>::Copy(env, tlsJpeg.data(), tlsJpeg.size());
  });
}

// decodeJpeg(jpeg: Uint8Array): {bgr: Buffer, width, height}
Napi::Value DecodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "decodeJpeg", "jpeg");
  return Guard(env, "decodeJpeg", [&]() -> Napi::Value {
    std::string why;
    cv::Mat m = DecodeJpegBgr(jpeg.Data(), jpeg.ByteLength(), &why);
    if (m.empty()) throw Napi::Error::New(env, "decodeJpeg: " + why);
    Napi::Object out = Napi::Object::New(env);
    out.Set("bgr", Napi::Buffer<uchar>::Copy(env, m.data, m.total() * m.elemSize()));  // fresh Mat: continuous
    out.Set("width", m.cols);
    out.Set("height", m.rows);
    return out;
  });
}

// jpegInfo(jpeg: Uint8Array): {width, height} | null. Decodes in full, so only
// data that decodes gets a size, but the pixels never leave C++.
Napi::Value JpegInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "jpegInfo", "jpeg");
  return Guard(env, "jpegInfo", [&]() -> Napi::Value {
    cv::Mat m;
    try {
      m = DecodeJpegBgr(jpeg.Data(), jpeg.ByteLength(), nullptr);
    } catch (const cv::Exception&) {
      return env.Null();  // an OpenCV assertion on odd input is "does not decode" too
    }
    if (m.empty()) return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("width", m.cols);
    out.Set("height", m.rows);
    return out;
  });
}

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeJpeg", Napi::Function::New<EncodeJpeg>(env, "encodeJpeg"));
  exports.Set("decodeJpeg", Napi::Function::New<DecodeJpeg>(env, "decodeJpeg"));
  exports.Set("jpegInfo", Napi::Function::New<JpegInfo>(env, "jpegInfo"));
}

}  // namespace lancam
