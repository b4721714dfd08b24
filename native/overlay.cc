// The `--overlay` box (overlay.h), and its two entry points for JS: drawOverlay
// (in place, for tests and the benchmark) and overlayJpeg (a source's own JPEG,
// decoded, overlaid and encoded again on a worker thread).
#include "overlay.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lancam.h"

namespace lancam {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
// The share of the picture the box keeps: dark enough for white text on white, light
// enough that what is under the box still shows.
constexpr double kKeep = 0.45;
constexpr int kWhite = 255;

struct Placement {
  cv::Rect box;    // within the picture (clipped)
  cv::Point org;   // the text's baseline origin
  double scale;
  int passes;      // thin strokes drawn this many times, a pixel apart: a bolder line
};

// Offsets of the passes. A thick anti-aliased stroke (thickness > 1) costs OpenCV 6-9
// times a thin one (measured 658 against 112 µs for a 1080p line); a thin stroke drawn
// again a pixel off looks as bold and costs twice.
const cv::Point kPassOffsets[] = {{0, 0}, {1, 1}, {1, 0}};
constexpr int kMaxPasses = 3;

// Sizes follow the picture's height, so the text takes the same share of a
// 360p and a 1080p picture: about 1/36 of the height for a capital letter.
Placement Place(int width, int height, const std::string& text, OverlayCorner corner) {
  Placement p;
  p.scale = std::max(0.3, height / 800.0);
  p.passes = std::clamp(static_cast<int>(std::lround(p.scale * 1.6)), 1, kMaxPasses);
  int baseline = 0;
  cv::Size size = cv::getTextSize(text, kFont, p.scale, 1, &baseline);
  size.width += p.passes - 1;
  baseline += p.passes - 1;
  int pad = std::max(2, static_cast<int>(std::lround(size.height * 0.4)));
  int margin = std::max(2, height / 60);
  int boxWidth = size.width + 2 * pad;
  int boxHeight = size.height + baseline + 2 * pad;
  bool left = corner == OverlayCorner::kTopLeft || corner == OverlayCorner::kBottomLeft;
  bool top = corner == OverlayCorner::kTopLeft || corner == OverlayCorner::kTopRight;
  // A box wider than the picture keeps the start of the text in view.
  int x = std::max(0, left ? margin : width - margin - boxWidth);
  int y = std::max(0, top ? margin : height - margin - boxHeight);
  p.box = cv::Rect(x, y, boxWidth, boxHeight) & cv::Rect(0, 0, width, height);
  p.org = cv::Point(x + pad, y + pad + size.height);
  return p;
}

// White text on `roi` (the box, whose origin is the box's top-left).
void DrawText(cv::Mat& roi, const std::string& text, const Placement& p) {
  for (int i = 0; i < p.passes; i++) {
    // putText clips to the box; the text never leaves it.
    cv::putText(roi, text, p.org - p.box.tl() + kPassOffsets[i], kFont, p.scale, cv::Scalar::all(kWhite), 1, cv::LINE_AA);
  }
}

OverlayCorner ParseCorner(Napi::Env env, const std::string& s, const char* fn) {
  if (s == "top-left") return OverlayCorner::kTopLeft;
  if (s == "top-right") return OverlayCorner::kTopRight;
  if (s == "bottom-left") return OverlayCorner::kBottomLeft;
  if (s == "bottom-right") return OverlayCorner::kBottomRight;
  throw Napi::RangeError::New(env, std::string(fn) + ": position must be top-left, top-right, bottom-left or bottom-right");
}

}  // namespace

Overlay OverlayArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Env env = info.Env();
  Napi::Value v = info[index];
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(fn) + ": overlay must be {text, position}");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value text = o.Get("text");
  Napi::Value position = o.Get("position");
  if (!text.IsString() || !position.IsString()) {
    throw Napi::TypeError::New(env, std::string(fn) + ": overlay must be {text: string, position: string}");
  }
  Overlay overlay;
  overlay.text = text.As<Napi::String>().Utf8Value();
  if (overlay.text.size() > kMaxOverlayBytes) {
    throw Napi::RangeError::New(env, std::string(fn) + ": overlay text longer than " + std::to_string(kMaxOverlayBytes) + " bytes");
  }
  for (char& c : overlay.text) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  overlay.corner = ParseCorner(env, position.As<Napi::String>().Utf8Value(), fn);
  return overlay;
}

void DrawOverlayBgr(cv::Mat& bgr, const Overlay& overlay) {
  if (overlay.text.empty() || bgr.empty()) return;
  Placement p = Place(bgr.cols, bgr.rows, overlay.text, overlay.corner);
  if (p.box.empty()) return;
  cv::Mat roi = bgr(p.box);
  roi.convertTo(roi, -1, kKeep, 0);
  DrawText(roi, overlay.text, p);
}

void DrawOverlayI420(unsigned char* y, unsigned char* u, unsigned char* v, int width, int height,
                     const Overlay& overlay) {
  if (overlay.text.empty() || width <= 0 || height <= 0) return;
  Placement p = Place(width, height, overlay.text, overlay.corner);
  if (p.box.empty()) return;
  cv::Mat luma(height, width, CV_8UC1, y);
  cv::Mat roi = luma(p.box);
  roi.convertTo(roi, -1, kKeep, 0);
  DrawText(roi, overlay.text, p);
  const int cw = (width + 1) / 2;
  const int ch = (height + 1) / 2;
  // The chroma samples covering the box, rounded outwards.
  cv::Rect c(p.box.x / 2, p.box.y / 2, 0, 0);
  c.width = (p.box.x + p.box.width + 1) / 2 - c.x;
  c.height = (p.box.y + p.box.height + 1) / 2 - c.y;
  c &= cv::Rect(0, 0, cw, ch);
  for (unsigned char* plane : {u, v}) {
    cv::Mat chroma(ch, cw, CV_8UC1, plane);
    cv::Mat croi = chroma(c);
    croi.convertTo(croi, -1, kKeep, 128.0 * (1.0 - kKeep));
  }
}

namespace {

// drawOverlay(pixels, width, height, layout: "bgr" | "i420", overlay): undefined.
// Draws into the caller's bytes during the call (nothing is kept).
Napi::Value DrawOverlayJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto pixels = Uint8ArrayArg(info, 0, "drawOverlay", "pixels");
  int width = Int32Arg(info, 1, "drawOverlay", "width");
  int height = Int32Arg(info, 2, "drawOverlay", "height");
  std::string layout = StringArg(info, 3, "drawOverlay", "layout");
  Overlay overlay = OverlayArg(info, 4, "drawOverlay");
  if (width < 1 || height < 1 || width > kMaxPictureWidth || height > kMaxPictureHeight) {
    throw Napi::RangeError::New(env, "drawOverlay: size must be within 1x1.." + std::to_string(kMaxPictureWidth) + "x" +
                                         std::to_string(kMaxPictureHeight));
  }
  const size_t w = static_cast<size_t>(width);
  const size_t h = static_cast<size_t>(height);
  size_t expected = 0;
  if (layout == "bgr") {
    expected = w * h * 3;
  } else if (layout == "i420") {
    expected = w * h + 2 * ((w + 1) / 2) * ((h + 1) / 2);
  } else {
    throw Napi::TypeError::New(env, "drawOverlay: layout must be \"bgr\" or \"i420\", got \"" + layout + "\"");
  }
  if (pixels.ByteLength() != expected) {
    throw Napi::RangeError::New(env, "drawOverlay: expected " + std::to_string(expected) + " bytes of " + layout + " for " +
                                         std::to_string(width) + "x" + std::to_string(height) + ", got " +
                                         std::to_string(pixels.ByteLength()));
  }
  Guard(env, "drawOverlay", [&] {
    if (layout == "bgr") {
      cv::Mat image(height, width, CV_8UC3, pixels.Data());
      DrawOverlayBgr(image, overlay);
    } else {
      unsigned char* y = pixels.Data();
      unsigned char* u = y + w * h;
      unsigned char* v = u + ((w + 1) / 2) * ((h + 1) / 2);
      DrawOverlayI420(y, u, v, width, height, overlay);
    }
  });
  return env.Undefined();
}

// overlayJpeg: a source's own JPEG with the overlay drawn on it. Decoded within
// the picture limit, drawn, encoded at `quality`; a failure is a result, never a
// rejection, so the caller drops and counts the frame like any other it cannot use.
class OverlayJpegWorker : public PromiseWorker {
 public:
  OverlayJpegWorker(Napi::Env env, const uchar* data, size_t size, Overlay overlay, int quality)
      : PromiseWorker(env, "overlayJpeg"), input_(data, data + size), overlay_(std::move(overlay)), quality_(quality) {}

 protected:
  void Run() override {
    try {
      std::string why;
      cv::Mat image = DecodeJpegBgr(input_.data(), input_.size(), &why);
      if (image.empty()) {
        reason_ = why;
        return;
      }
      DrawOverlayBgr(image, overlay_);
      if (!cv::imencode(".jpg", image, output_, {cv::IMWRITE_JPEG_QUALITY, quality_})) {
        reason_ = "OpenCV could not encode the image";
        return;
      }
      width_ = image.cols;
      height_ = image.rows;
    } catch (const std::exception& e) {
      reason_ = Describe("overlayJpeg", e);
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
  Overlay overlay_;
  int quality_;
  int width_ = 0;
  int height_ = 0;
  std::string reason_;
};

// overlayJpeg(jpeg, overlay, quality): Promise<{jpeg, width, height} | {jpeg: null, reason}>
Napi::Value OverlayJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "overlayJpeg", "jpeg");
  Overlay overlay = OverlayArg(info, 1, "overlayJpeg");
  int quality = Int32Arg(info, 2, "overlayJpeg", "quality");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "overlayJpeg: quality must be 1..100");
  auto* worker = new OverlayJpegWorker(env, jpeg.Data(), jpeg.ByteLength(), std::move(overlay), quality);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitOverlay(Napi::Env env, Napi::Object exports) {
  exports.Set("drawOverlay", Napi::Function::New<DrawOverlayJs>(env, "drawOverlay"));
  exports.Set("overlayJpeg", Napi::Function::New<OverlayJpeg>(env, "overlayJpeg"));
}

}  // namespace lancam
