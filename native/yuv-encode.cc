// YuvEncoder: raw I420 / YUYV frames to JPEG through TurboJPEG's planar input.
#include "yuv-encode.h"

#include <algorithm>

#include <opencv2/core.hpp>

namespace lancam {
namespace {

// Limited-range video YUV (BT.601: Y 16..235, Cb/Cr 16..240 around 128) to the
// full range JFIF expects, the mapping OpenCV's YUV-to-BGR conversions assume.
constexpr double kLumaScale = 255.0 / 219.0;
constexpr double kLumaOffset = -16.0 * kLumaScale;
constexpr double kChromaScale = 255.0 / 224.0;
constexpr double kChromaOffset = 128.0 - 128.0 * kChromaScale;

// Stretches `count` samples from `src` into `dst` (which may be `src`): convertTo
// is OpenCV's SIMD path, with rounding and saturation; the headers allocate nothing.
void Stretch(const unsigned char* src, unsigned char* dst, size_t count, double scale, double offset) {
  if (count == 0) return;
  cv::Mat in(1, static_cast<int>(count), CV_8UC1, const_cast<unsigned char*>(src));
  cv::Mat out(1, static_cast<int>(count), CV_8UC1, dst);
  in.convertTo(out, CV_8U, scale, offset);
}

// Packed 4:2:2 rows to planar 4:2:0: luma copied, chroma averaged over each
// pair of rows (what a JPEG encoder's own 2x2 downsampling would do with the
// horizontally subsampled chroma of the BGR path). Even width required.
void YuyvToI420(const unsigned char* src, int width, int height, unsigned char* y, unsigned char* u, unsigned char* v) {
  const size_t stride = static_cast<size_t>(width) * 2;
  const int chromaWidth = width / 2;
  for (int row = 0; row < height; row += 2) {
    const unsigned char* a = src + stride * row;
    // An odd last row pairs with itself.
    const unsigned char* b = row + 1 < height ? a + stride : a;
    unsigned char* ya = y + static_cast<size_t>(width) * row;
    unsigned char* yb = row + 1 < height ? ya + width : nullptr;
    unsigned char* ur = u + static_cast<size_t>(chromaWidth) * (row / 2);
    unsigned char* vr = v + static_cast<size_t>(chromaWidth) * (row / 2);
    for (int i = 0; i < chromaWidth; i++) {
      const unsigned char* pa = a + 4 * i;
      const unsigned char* pb = b + 4 * i;
      ya[2 * i] = pa[0];
      ya[2 * i + 1] = pa[2];
      if (yb) {
        yb[2 * i] = pb[0];
        yb[2 * i + 1] = pb[2];
      }
      ur[i] = static_cast<unsigned char>((pa[1] + pb[1] + 1) >> 1);
      vr[i] = static_cast<unsigned char>((pa[3] + pb[3] + 1) >> 1);
    }
  }
}

}  // namespace

size_t YuvFrameBytes(YuvLayout layout, int width, int height) {
  if (width <= 0 || height <= 0) return 0;
  const size_t w = static_cast<size_t>(width);
  const size_t h = static_cast<size_t>(height);
  switch (layout) {
    case YuvLayout::kI420:
      return w * h + 2 * ((w + 1) / 2) * ((h + 1) / 2);
    case YuvLayout::kYuyv:
      return width % 2 ? 0 : w * h * 2;
  }
  return 0;
}

YuvEncoder::~YuvEncoder() {
  if (out_) tjFree(out_);
  if (tj_) tjDestroy(tj_);
}

bool YuvEncoder::Prepare(int width, int height, std::string* why) {
  if (!tj_) {
    tj_ = tjInitCompress();
    if (!tj_) {
      *why = std::string("TurboJPEG: ") + tjGetErrorStr2(nullptr);
      return false;
    }
  }
  if (width == width_ && height == height_ && out_) return true;
  // The worst case for any picture at this size: with TJFLAG_NOREALLOC TurboJPEG
  // then never has to grow (or free) the buffer behind our back.
  unsigned long capacity = tjBufSize(width, height, TJSAMP_420);
  if (capacity == static_cast<unsigned long>(-1)) {
    *why = std::string("TurboJPEG: ") + tjGetErrorStr2(nullptr);
    return false;
  }
  if (out_) tjFree(out_);
  out_ = tjAlloc(static_cast<int>(capacity));
  if (!out_) {
    outCapacity_ = 0;
    *why = "TurboJPEG: cannot allocate " + std::to_string(capacity) + " bytes";
    return false;
  }
  outCapacity_ = capacity;
  planes_.resize(YuvFrameBytes(YuvLayout::kI420, width, height));
  width_ = width;
  height_ = height;
  return true;
}

bool YuvEncoder::Encode(const unsigned char* data, size_t size, int width, int height, YuvLayout layout,
                        bool limitedRange, int quality, std::string* why, const Overlay* overlay) {
  try {
    const size_t expected = YuvFrameBytes(layout, width, height);
    if (expected == 0) {
      *why = "cannot encode " + std::to_string(width) + "x" + std::to_string(height) +
             (layout == YuvLayout::kYuyv ? " YUYV (the width must be even)" : " I420");
      return false;
    }
    if (size != expected) {
      *why = "raw frame of " + std::to_string(size) + " bytes, expected " + std::to_string(expected) + " for " +
             std::to_string(width) + "x" + std::to_string(height) +
             (layout == YuvLayout::kYuyv ? " YUYV" : " I420");
      return false;
    }
    if (!Prepare(width, height, why)) return false;

    const size_t lumaBytes = static_cast<size_t>(width) * height;
    const unsigned char* planes = data;
    if (layout == YuvLayout::kYuyv) {
      unsigned char* y = planes_.data();
      unsigned char* u = y + lumaBytes;
      unsigned char* v = u + (planes_.size() - lumaBytes) / 2;
      YuyvToI420(data, width, height, y, u, v);
      planes = planes_.data();
    }
    if (limitedRange) {
      // Into the scratch planes for I420 (the caller's bytes are read-only), in place for YUYV's.
      const size_t chroma = planes_.size() - lumaBytes;
      Stretch(planes, planes_.data(), lumaBytes, kLumaScale, kLumaOffset);
      Stretch(planes + lumaBytes, planes_.data() + lumaBytes, chroma, kChromaScale, kChromaOffset);
      planes = planes_.data();
    }
    const size_t chromaPlane = static_cast<size_t>((width + 1) / 2) * ((height + 1) / 2);
    if (overlay) {
      // Drawn on our own copy: the caller's frame is read-only.
      if (planes != planes_.data()) std::copy(planes, planes + planes_.size(), planes_.data());
      planes = planes_.data();
      unsigned char* y = planes_.data();
      DrawOverlayI420(y, y + lumaBytes, y + lumaBytes + chromaPlane, width, height, *overlay);
    }

    // Explicit strides: TurboJPEG's default pads an odd luma width to even, which is
    // not how FFmpeg lays out an odd-sized frame. (For an odd height it reads one row
    // past the luma plane, into the chroma that follows: in bounds, and cropped away.)
    const int chromaWidth = (width + 1) / 2;
    const unsigned char* src[3] = {planes, planes + lumaBytes, planes + lumaBytes + chromaPlane};
    const int strides[3] = {width, chromaWidth, chromaWidth};
    unsigned long jpegSize = outCapacity_;
    if (tjCompressFromYUVPlanes(tj_, src, width, strides, height, TJSAMP_420, &out_, &jpegSize, quality,
                                TJFLAG_NOREALLOC) != 0) {
      *why = std::string("TurboJPEG: ") + tjGetErrorStr2(tj_);
      return false;
    }
    outSize_ = jpegSize;
    return true;
  } catch (const std::exception& e) {
    *why = e.what();
    return false;
  }
}

}  // namespace lancam
