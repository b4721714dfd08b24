// JPEG encode/decode between packed BGR buffers and JPEG bytes (synchronous).
// Decoding reads the JPEG header first and refuses pictures above the limit.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lancam.h"

namespace lancam {

namespace {

// JPEG marker codes (ITU T.81 table B.1); lib/wire/jpeg-header.ts draws the layout.
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
  if (width > kMaxPictureWidth || height > kMaxPictureHeight) {
    return refuse("JPEG of " + std::to_string(width) + "x" + std::to_string(height) + " exceeds the " +
                  std::to_string(kMaxPictureWidth) + "x" + std::to_string(kMaxPictureHeight) + " limit");
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

// jpegThumbnail(jpeg, denominator): {grey: Buffer, width, height} | null. libjpeg
// scales while decoding (1/8 keeps only each block's DC), so a reader that needs a
// glimpse of every frame (a benchmark's frame-number barcode) pays a fraction of a decode.
Napi::Value JpegThumbnail(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "jpegThumbnail", "jpeg");
  int denominator = Int32Arg(info, 1, "jpegThumbnail", "denominator");
  int flag = denominator == 1   ? cv::IMREAD_GRAYSCALE
             : denominator == 2 ? cv::IMREAD_REDUCED_GRAYSCALE_2
             : denominator == 4 ? cv::IMREAD_REDUCED_GRAYSCALE_4
             : denominator == 8 ? cv::IMREAD_REDUCED_GRAYSCALE_8
                                : -1;
  if (flag < 0) throw Napi::RangeError::New(env, "jpegThumbnail: denominator must be 1, 2, 4 or 8");
  return Guard(env, "jpegThumbnail", [&]() -> Napi::Value {
    int width = 0;
    int height = 0;
    if (jpeg.ByteLength() > static_cast<size_t>(INT_MAX) || !ReadJpegSize(jpeg.Data(), jpeg.ByteLength(), &width, &height) ||
        width > kMaxPictureWidth || height > kMaxPictureHeight) {
      return env.Null();
    }
    cv::Mat bytes(1, static_cast<int>(jpeg.ByteLength()), CV_8UC1, jpeg.Data());
    cv::Mat grey;
    try {
      grey = cv::imdecode(bytes, flag);
    } catch (const cv::Exception&) {
      return env.Null();
    }
    if (grey.empty()) return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("grey", Napi::Buffer<uchar>::Copy(env, grey.data, grey.total()));  // fresh Mat: continuous
    out.Set("width", grey.cols);
    out.Set("height", grey.rows);
    return out;
  });
}

// fitJpeg: a JPEG that fits in one datagram for viewers that cannot reassemble
// (the classroom protocol). Size falls roughly with the pixel count, so each try
// aims at the byte budget from the last one's size; quality drops only once the
// picture is as small as it may get, since a smaller sharp picture beats a big
// blurred one in the classroom window.
constexpr double kFitHeadroom = 0.9;   // aim below the budget: the estimate is rough
constexpr double kFitMaxShrink = 0.9;  // each miss shrinks the sides by at least 10 %
constexpr int kFitMinSide = 16;        // smallest side the picture is shrunk to
constexpr int kFitQualityStep = 15;
constexpr int kFitMinQuality = 10;
constexpr int kFitMaxTries = 16;

class FitJpegWorker : public PromiseWorker {
 public:
  FitJpegWorker(Napi::Env env, const uchar* data, size_t size, size_t maxBytes, int quality)
      : PromiseWorker(env, "fitJpeg"), input_(data, data + size), maxBytes_(maxBytes), quality_(quality) {}

 protected:
  // A failure is a result ({jpeg: null, reason}), never a rejection: a frame that
  // cannot be fitted is skipped by the caller, like any other frame it cannot use.
  void Run() override {
    try {
      Fit();
    } catch (const std::exception& e) {
      Fail(Describe("fitJpeg", e));
    } catch (...) {
      Fail("fitJpeg: unknown native exception");
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    if (!fitted_) {
      out.Set("jpeg", env.Null());
      out.Set("reason", reason_);
      return out;
    }
    const std::vector<uchar>& bytes = passedThrough_ ? input_ : output_;
    out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, bytes.data(), bytes.size()));
    out.Set("width", width_);
    out.Set("height", height_);
    out.Set("quality", quality_);
    return out;
  }

 private:
  void Fail(std::string reason) {
    fitted_ = false;
    reason_ = std::move(reason);
  }

  void Fit() {
    int width = 0;
    int height = 0;
    if (input_.size() <= maxBytes_ && ReadJpegSize(input_.data(), input_.size(), &width, &height)) {
      passedThrough_ = fitted_ = true;
      width_ = width;
      height_ = height;
      quality_ = 0;  // unknown: the caller's picture, as it came
      return;
    }
    std::string why;
    cv::Mat image = DecodeJpegBgr(input_.data(), input_.size(), &why);
    if (image.empty()) return Fail("fitJpeg: " + why);
    // Never below kFitMinSide on the shorter side (or the original, if smaller).
    double minScale = std::min(1.0, static_cast<double>(kFitMinSide) / std::min(image.cols, image.rows));
    double scale = std::clamp(std::sqrt(kFitHeadroom * maxBytes_ / input_.size()), minScale, 1.0);
    int quality = quality_;
    cv::Mat small;
    for (int tries = 0; tries < kFitMaxTries; tries++) {
      int w = std::max(1, static_cast<int>(std::lround(image.cols * scale)));
      int h = std::max(1, static_cast<int>(std::lround(image.rows * scale)));
      if (w == image.cols && h == image.rows) {
        small = image;
      } else {
        cv::resize(image, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
      }
      if (!cv::imencode(".jpg", small, output_, {cv::IMWRITE_JPEG_QUALITY, quality})) {
        return Fail("fitJpeg: OpenCV could not encode the image");
      }
      if (output_.size() <= maxBytes_) {
        fitted_ = true;
        width_ = w;
        height_ = h;
        quality_ = quality;
        return;
      }
      double shrink = std::min(kFitMaxShrink, std::sqrt(kFitHeadroom * maxBytes_ / output_.size()));
      if (scale > minScale) {
        scale = std::max(minScale, scale * shrink);
      } else if (quality > kFitMinQuality) {
        quality = std::max(kFitMinQuality, quality - kFitQualityStep);
      } else {
        return Fail("fitJpeg: " + std::to_string(output_.size()) + " bytes at " + std::to_string(w) + "x" +
                    std::to_string(h) + " quality " + std::to_string(quality) + ", more than the " +
                    std::to_string(maxBytes_) + " allowed");
      }
    }
    Fail("fitJpeg: no fit within " + std::to_string(kFitMaxTries) + " tries for " + std::to_string(maxBytes_) +
         " bytes");
  }

  std::vector<uchar> input_;
  std::vector<uchar> output_;
  size_t maxBytes_;
  int quality_;
  bool fitted_ = false;
  bool passedThrough_ = false;
  int width_ = 0;
  int height_ = 0;
  std::string reason_;
};

// fitJpeg(jpeg, maxBytes, quality): Promise<{jpeg, width, height, quality} | {jpeg: null, reason}>
Napi::Value FitJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "fitJpeg", "jpeg");
  int maxBytes = Int32Arg(info, 1, "fitJpeg", "maxBytes");
  int quality = Int32Arg(info, 2, "fitJpeg", "quality");
  if (maxBytes < 1) throw Napi::RangeError::New(env, "fitJpeg: maxBytes must be positive");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "fitJpeg: quality must be 1..100");
  auto* worker = new FitJpegWorker(env, jpeg.Data(), jpeg.ByteLength(), static_cast<size_t>(maxBytes), quality);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// reencodeJpeg: a damaged JPEG from a source that is otherwise passed through,
// decoded as far as libjpeg gets and encoded again, so what leaves is whole. The
// rare path: it copies its input and allocates freely.
class ReencodeJpegWorker : public PromiseWorker {
 public:
  ReencodeJpegWorker(Napi::Env env, const uchar* data, size_t size, int quality)
      : PromiseWorker(env, "reencodeJpeg"), input_(data, data + size), quality_(quality) {}

 protected:
  // A failure is a result ({jpeg: null, reason}), never a rejection: the caller
  // drops that frame and counts it, like any other frame it cannot use.
  void Run() override {
    try {
      std::string why;
      cv::Mat image = DecodeJpegBgr(input_.data(), input_.size(), &why);
      if (image.empty()) {
        reason_ = why;
        return;
      }
      if (!cv::imencode(".jpg", image, output_, {cv::IMWRITE_JPEG_QUALITY, quality_})) {
        reason_ = "OpenCV could not encode the image";
        return;
      }
      width_ = image.cols;
      height_ = image.rows;
    } catch (const std::exception& e) {
      reason_ = Describe("decode", e);
    } catch (...) {
      reason_ = "unknown native exception";
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    if (width_ == 0) {
      out.Set("jpeg", env.Null());
      out.Set("reason", reason_);
      return out;
    }
    out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, output_.data(), output_.size()));
    out.Set("width", width_);
    out.Set("height", height_);
    return out;
  }

 private:
  std::vector<uchar> input_;
  std::vector<uchar> output_;
  int quality_;
  int width_ = 0;
  int height_ = 0;
  std::string reason_;
};

// reencodeJpeg(jpeg, quality): Promise<{jpeg, width, height} | {jpeg: null, reason}>
Napi::Value ReencodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "reencodeJpeg", "jpeg");
  int quality = Int32Arg(info, 1, "reencodeJpeg", "quality");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "reencodeJpeg: quality must be 1..100");
  auto* worker = new ReencodeJpegWorker(env, jpeg.Data(), jpeg.ByteLength(), quality);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}


// scaleJpeg: smaller copies of one frame for viewers whose path cannot carry the
// full picture (the server's quality layers). Decoded once, each size resized from
// the full picture (INTER_AREA) and encoded; a failure is a result, never a rejection.
constexpr size_t kScaleMaxSizes = 4;

class ScaleJpegWorker : public PromiseWorker {
 public:
  ScaleJpegWorker(Napi::Env env, const uchar* data, size_t size, std::vector<cv::Size> sizes, int quality)
      : PromiseWorker(env, "scaleJpeg"), input_(data, data + size), sizes_(std::move(sizes)), quality_(quality) {}

 protected:
  void Run() override {
    try {
      std::string why;
      cv::Mat image = DecodeJpegBgr(input_.data(), input_.size(), &why);
      if (image.empty()) {
        reason_ = why;
        return;
      }
      cv::Mat small;
      for (const cv::Size& s : sizes_) {
        if (s.width > image.cols || s.height > image.rows) {
          reason_ = std::to_string(s.width) + "x" + std::to_string(s.height) + " is larger than the picture's " +
                    std::to_string(image.cols) + "x" + std::to_string(image.rows);
          outputs_.clear();
          return;
        }
        cv::resize(image, small, s, 0, 0, cv::INTER_AREA);
        outputs_.emplace_back();
        if (!cv::imencode(".jpg", small, outputs_.back(), {cv::IMWRITE_JPEG_QUALITY, quality_})) {
          reason_ = "OpenCV could not encode the image";
          outputs_.clear();
          return;
        }
      }
      done_ = true;
    } catch (const std::exception& e) {
      reason_ = Describe("scaleJpeg", e);
      outputs_.clear();
    } catch (...) {
      reason_ = "unknown native exception";
      outputs_.clear();
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    if (!done_) {
      out.Set("jpegs", env.Null());
      out.Set("reason", reason_);
      return out;
    }
    Napi::Array jpegs = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); i++) jpegs.Set(i, Napi::Buffer<uchar>::Copy(env, outputs_[i].data(), outputs_[i].size()));
    out.Set("jpegs", jpegs);
    return out;
  }

 private:
  std::vector<uchar> input_;
  std::vector<cv::Size> sizes_;
  int quality_;
  std::vector<std::vector<uchar>> outputs_;
  bool done_ = false;
  std::string reason_;
};

// scaleJpeg(jpeg, sizes: {width, height}[], quality): Promise<{jpegs: Buffer[]} | {jpegs: null, reason}>
Napi::Value ScaleJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "scaleJpeg", "jpeg");
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "scaleJpeg: sizes must be an array");
  Napi::Array list = info[1].As<Napi::Array>();
  if (list.Length() < 1 || list.Length() > kScaleMaxSizes) throw Napi::RangeError::New(env, "scaleJpeg: 1 to 4 sizes");
  std::vector<cv::Size> sizes;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "scaleJpeg: each size must be {width, height}");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value w = o.Get("width"), h = o.Get("height");
    if (!w.IsNumber() || !h.IsNumber()) throw Napi::TypeError::New(env, "scaleJpeg: each size must be {width, height}");
    double wd = w.As<Napi::Number>().DoubleValue(), hd = h.As<Napi::Number>().DoubleValue();
    if (!(wd >= kMinPictureSide && wd <= kMaxPictureWidth && hd >= kMinPictureSide && hd <= kMaxPictureHeight) ||
        wd != std::floor(wd) || hd != std::floor(hd)) {
      throw Napi::RangeError::New(env, "scaleJpeg: sizes must be whole numbers within the picture limits");
    }
    sizes.emplace_back(static_cast<int>(wd), static_cast<int>(hd));
  }
  int quality = Int32Arg(info, 2, "scaleJpeg", "quality");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "scaleJpeg: quality must be 1..100");
  auto* worker = new ScaleJpegWorker(env, jpeg.Data(), jpeg.ByteLength(), std::move(sizes), quality);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeJpeg", Napi::Function::New<EncodeJpeg>(env, "encodeJpeg"));
  exports.Set("decodeJpeg", Napi::Function::New<DecodeJpeg>(env, "decodeJpeg"));
  exports.Set("jpegInfo", Napi::Function::New<JpegInfo>(env, "jpegInfo"));
  exports.Set("fitJpeg", Napi::Function::New<FitJpeg>(env, "fitJpeg"));
  exports.Set("reencodeJpeg", Napi::Function::New<ReencodeJpeg>(env, "reencodeJpeg"));
  exports.Set("jpegThumbnail", Napi::Function::New<JpegThumbnail>(env, "jpegThumbnail"));
  exports.Set("scaleJpeg", Napi::Function::New<ScaleJpeg>(env, "scaleJpeg"));
}

}  // namespace lancam
