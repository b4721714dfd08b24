// The `--overlay` text box: a line of text on a translucent box in one corner,
// scaled to the picture's height, drawn into a packed BGR picture or the planes
// of an I420 one. Only the box's rectangle is touched, so the cost does not grow
// with the picture.
#pragma once

#include <string>

#include <napi.h>
#include <opencv2/core.hpp>

namespace lancam {

// Where the box sits.
enum class OverlayCorner { kTopLeft, kTopRight, kBottomLeft, kBottomRight };

// The longest text the addon draws, in bytes (lib/capture/overlay-text.ts bounds the
// template far below this; the fields it fills in are bounded too).
constexpr size_t kMaxOverlayBytes = 1024;

// One overlay to draw: the finished text (no codes left) and its corner.
struct Overlay {
  std::string text;
  OverlayCorner corner = OverlayCorner::kTopLeft;
};

// Reads {text, position} from a JS object; a TypeError/RangeError naming `fn` otherwise.
// Bytes outside printable ASCII become '?': the Hershey fonts have nothing else.
Overlay OverlayArg(const Napi::CallbackInfo& info, size_t index, const char* fn);

// Draws into a packed BGR picture (CV_8UC3).
void DrawOverlayBgr(cv::Mat& bgr, const Overlay& overlay);

// Draws into full-range I420 planes of width x height (chroma (w+1)/2 x (h+1)/2):
// the box darkens luma and pulls chroma toward grey by the same amount, as the BGR
// box does, and the text is white.
void DrawOverlayI420(unsigned char* y, unsigned char* u, unsigned char* v, int width, int height,
                     const Overlay& overlay);

}  // namespace lancam
