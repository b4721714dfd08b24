// JPEG encode/decode between packed BGR buffers and JPEG bytes (synchronous).
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "lancam.h"

namespace lancam {

// OpenCV 4.6's imdecode(buf, flags, &dst) leaves dst holding the previous image
// when the bytes are not an image at all, so garbage would "decode" as the last
// frame. The plain overload returns an empty Mat on every failure; glibc hands
// the freed block back on the next call (measured: ~3 page faults per 720p decode).
cv::Mat DecodeBgr(const uchar* data, size_t size) {
  cv::Mat bytes(1, static_cast<int>(size), CV_8UC1, const_cast<uchar*>(data));
  return cv::imdecode(bytes, cv::IMREAD_COLOR);
}

namespace {

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

// encodeJpeg(bgr: Uint8Array, width, height, quality): Buffer
Napi::Value EncodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "encodeJpeg: bgr must be a Uint8Array");
  auto bgr = info[0].As<Napi::Uint8Array>();
  int width = info[1].As<Napi::Number>().Int32Value();
  int height = info[2].As<Napi::Number>().Int32Value();
  int quality = info[3].As<Napi::Number>().Int32Value();
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
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "decodeJpeg: jpeg must be a Uint8Array");
  auto jpeg = info[0].As<Napi::Uint8Array>();
  return Guard(env, "decodeJpeg", [&]() -> Napi::Value {
    const uchar* data = jpeg.Data();
    size_t size = jpeg.ByteLength();
    cv::Mat m;
    if (size > 0) m = DecodeBgr(data, size);
    if (m.empty()) {
      throw Napi::Error::New(env, "decodeJpeg: not a decodable image (" + std::to_string(size) +
                                      " bytes, starting with " + HexPrefix(data, size) + ")");
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("bgr", Napi::Buffer<uchar>::Copy(env, m.data, m.total() * m.elemSize()));  // fresh Mat: continuous
    out.Set("width", m.cols);
    out.Set("height", m.rows);
    return out;
  });
}

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeJpeg", Napi::Function::New<EncodeJpeg>(env, "encodeJpeg"));
  exports.Set("decodeJpeg", Napi::Function::New<DecodeJpeg>(env, "decodeJpeg"));
}

}  // namespace lancam
