// TestPattern: the synthetic frames of `--source test`, rendered and JPEG-encoded
// on a worker thread. Each frame carries its number as a barcode so a receiver
// can check order and loss from the pixels alone.
//
// Barcode band, rows 0..BAND_HEIGHT-1, cells of CELL = width / CELLS px from x = 0
// (white = 1, black = 0; the rest of the band is mid grey):
//
//   | 1 | 0 | b31 b30 ... b0 | c3 c2 c1 c0 | 0 | 1 |
//    start    32 data bits     check nibble   end
//
// The check nibble is the XOR of the eight nibbles of the number. The tests' reader
// (tests/helpers/test-pattern.ts) reads it back with the same constants, exported
// below as `testPatternLayout`.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lancam.h"
#include "overlay.h"

namespace lancam {
namespace {

constexpr int kBandHeight = 16;
constexpr int kCells = 40;  // 2 start + 32 data + 4 check + 2 end
constexpr int kMinCellWidth = 4;
constexpr int kMinWidth = kCells * kMinCellWidth;

uint32_t CheckNibble(uint32_t n) {
  uint32_t x = 0;
  for (int i = 0; i < 8; i++) x ^= (n >> (4 * i)) & 0xF;
  return x;
}

class TestPattern : public Napi::ObjectWrap<TestPattern> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TestPattern", {InstanceMethod<&TestPattern::Render>("render")});
  }

  explicit TestPattern(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TestPattern>(info) {}

 private:
  class RenderWorker;

  // render(width, height, frameNumber, text, quality, overlay?): Promise<Buffer>
  Napi::Value Render(const Napi::CallbackInfo& info);

  // Worker thread. Everything per-frame draws into reused Mats.
  void Draw(int width, int height, uint32_t frame, const std::string& text, int quality, const Overlay* overlay) {
    if (background_.cols != width || background_.rows != height) MakeBackground(width, height);
    background_.copyTo(canvas_);

    // Moving content: a ball bouncing left-right, a bar sweeping up-down.
    int top = kBandHeight;
    int radius = std::max(4, height / 10);
    int spanX = std::max(1, width - 2 * radius);
    int stepX = std::max(1, width / 120);
    int px = static_cast<int>((static_cast<uint64_t>(frame) * stepX) % (2 * spanX));
    int x = radius + (px < spanX ? px : 2 * spanX - px);
    int y = top + (height - top) / 2;
    cv::circle(canvas_, {x, y}, radius, HueColour(frame), cv::FILLED, cv::LINE_8);
    int barHeight = std::max(2, height / 40);
    int spanY = std::max(1, height - top - barHeight);
    int py = static_cast<int>(static_cast<uint64_t>(frame) * 3 % (2 * spanY));
    int barY = top + (py < spanY ? py : 2 * spanY - py);
    cv::rectangle(canvas_, cv::Rect(0, barY, width, barHeight), {255, 255, 255}, cv::FILLED);

    // Text: outlined so it reads on any part of the gradient.
    double scale = std::max(0.35, height / 720.0);
    int thick = std::max(1, static_cast<int>(std::lround(2 * scale)));
    cv::Point org(std::max(4, width / 80), top + static_cast<int>(40 * scale));
    cv::putText(canvas_, text, org, cv::FONT_HERSHEY_SIMPLEX, scale, {0, 0, 0}, thick + 2, cv::LINE_AA);
    cv::putText(canvas_, text, org, cv::FONT_HERSHEY_SIMPLEX, scale, {255, 255, 255}, thick, cv::LINE_AA);

    // Under the barcode, so a receiver still reads the frame number whatever the corner.
    if (overlay) DrawOverlayBgr(canvas_, *overlay);
    DrawBarcode(frame);
    params_[1] = quality;
    if (!cv::imencode(".jpg", canvas_, jpeg_, params_)) throw std::runtime_error("JPEG encoding failed");
  }

  // The gradient is the costly part of a frame, so it is made once per size.
  void MakeBackground(int width, int height) {
    background_.create(height, width, CV_8UC3);
    for (int y = 0; y < height; y++) {
      auto* row = background_.ptr<cv::Vec3b>(y);
      uchar g = static_cast<uchar>(255 * y / std::max(1, height - 1));
      for (int x = 0; x < width; x++) {
        uchar b = static_cast<uchar>(255 * x / std::max(1, width - 1));
        row[x] = cv::Vec3b(b, g, static_cast<uchar>(255 - (b + g) / 2));
      }
    }
  }

  void DrawBarcode(uint32_t n) {
    int cell = canvas_.cols / kCells;
    int band = std::min(kBandHeight, canvas_.rows);
    cv::rectangle(canvas_, cv::Rect(0, 0, canvas_.cols, band), {128, 128, 128}, cv::FILLED);
    if (cell < kMinCellWidth) return;  // too narrow to read back; documented in tests/helpers/test-pattern.ts
    uint32_t check = CheckNibble(n);
    std::vector<int>& bits = bits_;
    bits.clear();
    bits.insert(bits.end(), {1, 0});
    for (int i = 31; i >= 0; i--) bits.push_back((n >> i) & 1);
    for (int i = 3; i >= 0; i--) bits.push_back((check >> i) & 1);
    bits.insert(bits.end(), {0, 1});
    for (int i = 0; i < kCells; i++) {
      cv::Scalar colour = bits[i] ? cv::Scalar(255, 255, 255) : cv::Scalar(0, 0, 0);
      cv::rectangle(canvas_, cv::Rect(i * cell, 0, cell, band), colour, cv::FILLED);
    }
  }

  static cv::Scalar HueColour(uint32_t frame) {
    static const cv::Scalar kColours[] = {{0, 0, 255}, {0, 255, 255}, {0, 255, 0}, {255, 255, 0}, {255, 0, 0}, {255, 0, 255}};
    return kColours[(frame / 15) % 6];
  }

  cv::Mat background_;
  cv::Mat canvas_;
  std::vector<uchar> jpeg_;
  std::vector<int> bits_;
  std::vector<int> params_{cv::IMWRITE_JPEG_QUALITY, 80};
  bool busy_ = false;  // JS thread only
};

class TestPattern::RenderWorker : public PromiseWorker {
 public:
  RenderWorker(Napi::Env env, TestPattern* owner, int width, int height, uint32_t frame, std::string text, int quality,
               std::optional<Overlay> overlay)
      : PromiseWorker(env, "renderTestFrame"), owner_(owner), self_(Napi::Persistent(owner->Value())),
        width_(width), height_(height), frame_(frame), text_(std::move(text)), quality_(quality),
        overlay_(std::move(overlay)) {}

 private:
  void Run() override { owner_->Draw(width_, height_, frame_, text_, quality_, overlay_ ? &*overlay_ : nullptr); }
  Napi::Value Result(Napi::Env env) override {
    return Napi::Buffer<uchar>::Copy(env, owner_->jpeg_.data(), owner_->jpeg_.size());
  }
  void Finish() override { owner_->busy_ = false; }

  TestPattern* owner_;
  Napi::ObjectReference self_;  // keeps the JS object (and owner_) alive meanwhile
  int width_, height_;
  uint32_t frame_;
  std::string text_;
  int quality_;
  std::optional<Overlay> overlay_;
};

Napi::Value TestPattern::Render(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, "renderTestFrame: a render is already running on this renderer");
  int width = info[0].As<Napi::Number>().Int32Value();
  int height = info[1].As<Napi::Number>().Int32Value();
  double frame = info[2].As<Napi::Number>().DoubleValue();
  std::string text = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
  int quality = info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : 80;
  if (width < kMinPictureSide || height < kMinPictureSide || width > kMaxPictureWidth || height > kMaxPictureHeight) {
    throw Napi::RangeError::New(env, "renderTestFrame: size must be within " + std::to_string(kMinPictureSide) + "x" +
                                         std::to_string(kMinPictureSide) + ".." + std::to_string(kMaxPictureWidth) + "x" +
                                         std::to_string(kMaxPictureHeight));
  }
  if (!(frame >= 0 && frame <= 4294967295.0) || frame != std::floor(frame)) {
    throw Napi::RangeError::New(env, "renderTestFrame: frameNumber must be an integer 0..2^32-1");
  }
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "renderTestFrame: quality must be 1..100");
  std::optional<Overlay> overlay;
  if (info.Length() > 5 && !info[5].IsUndefined()) overlay = OverlayArg(info, 5, "renderTestFrame");
  auto* worker = new RenderWorker(env, this, width, height, static_cast<uint32_t>(frame), std::move(text), quality,
                                  std::move(overlay));
  busy_ = true;
  worker->Queue();
  return worker->Promise();
}

}  // namespace

void InitTestPattern(Napi::Env env, Napi::Object exports) {
  exports.Set("TestPattern", TestPattern::Define(env));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("bandHeight", kBandHeight);
  layout.Set("cells", kCells);
  layout.Set("minCellWidth", kMinCellWidth);
  layout.Set("minWidth", kMinWidth);
  exports.Set("testPatternLayout", layout);
}

}  // namespace lancam
