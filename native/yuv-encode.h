// JPEG straight from raw YUV frames with the TurboJPEG API: no conversion to BGR
// and back, which is what OpenCV's decode-then-imencode path costs.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <turbojpeg.h>

#include "overlay.h"

namespace lancam {

// How the bytes of one raw frame are laid out.
enum class YuvLayout {
  kI420,  // planar 4:2:0: Y, then U, then V (FFmpeg yuv420p, V4L2 YU12)
  kYuyv,  // packed 4:2:2: Y0 U Y1 V per two pixels (FFmpeg yuyv422, V4L2 YUYV)
};

// The bytes one frame of `layout` at width x height takes, unpadded; 0 for a bad size.
size_t YuvFrameBytes(YuvLayout layout, int width, int height);

// One encoder per capture: a persistent TurboJPEG handle, output buffer and
// scratch planes, so the per-frame path allocates nothing once warm (a fresh
// buffer per frame costs a page fault per 4 KiB, about 12 µs each here).
// Not thread-safe; the capture's one-operation-at-a-time rule covers it.
class YuvEncoder {
 public:
  YuvEncoder() = default;
  ~YuvEncoder();
  YuvEncoder(const YuvEncoder&) = delete;
  YuvEncoder& operator=(const YuvEncoder&) = delete;

  // Encodes one frame at `quality` as 4:2:0 JPEG. Video YUV is limited range
  // (Y 16..235), JPEG's full range: with `limitedRange` the samples are stretched
  // on the way, as OpenCV's own YUV-to-BGR conversion does. False, with the
  // reason in `why`, when the size is wrong or TurboJPEG fails; never throws.
  // With `overlay`, it is drawn on the (full-range) planes before the encode.
  bool Encode(const unsigned char* data, size_t size, int width, int height, YuvLayout layout, bool limitedRange,
              int quality, std::string* why, const Overlay* overlay = nullptr);

  // The last JPEG Encode made; valid until the next call.
  const unsigned char* data() const { return out_; }
  size_t size() const { return outSize_; }

 private:
  bool Prepare(int width, int height, std::string* why);

  tjhandle tj_ = nullptr;
  unsigned char* out_ = nullptr;  // tjAlloc'd, tjBufSize for the current size
  unsigned long outCapacity_ = 0;
  unsigned long outSize_ = 0;
  int width_ = 0;
  int height_ = 0;
  std::vector<unsigned char> planes_;  // Y, U, V of the frame being encoded
};

}  // namespace lancam
