// What the viewer's window shows around its picture: a status line (when the stream is
// not live) and an info line drawn on it, and full screen with the aspect kept. The
// picture is kept clean so that the text can change (the age of a stalled picture
// counts up) without a new frame. Everything runs on the JS thread, as window.cc does.
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <string>

#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>

#include "lancam.h"

namespace lancam {
namespace {

// A line longer than this is cut: the text comes from JS, and a line this long is
// already too small to read on any picture lancam shows.
constexpr size_t kMaxLineChars = 160;

// The last picture shown, without any text: what redrawWindow draws again.
cv::Mat shownPicture;
bool fullScreen = false;
// The X screen's size while full screen (0 when unknown): the picture is padded to its
// shape with black, so that the bars around it are black rather than Qt's grey.
cv::Size screenSize;

// Hershey fonts draw ASCII only: anything else becomes one '?' per character (UTF-8
// continuation bytes are skipped), control characters included.
std::string Printable(const std::string& s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxLineChars));
  for (unsigned char c : s) {
    if (out.size() >= kMaxLineChars) break;
    if ((c & 0xC0) == 0x80) continue;
    out.push_back(c >= 32 && c < 127 ? static_cast<char>(c) : '?');
  }
  return out;
}

WindowText TextArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  WindowText text;
  Napi::Value v = info[index];
  if (v.IsUndefined()) return text;
  if (!v.IsObject()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": text must be an object {top, bottom}");
  Napi::Object o = v.As<Napi::Object>();
  for (auto [key, into] : {std::pair<const char*, std::string*>{"top", &text.top}, {"bottom", &text.bottom}}) {
    Napi::Value s = o.Get(key);
    if (s.IsUndefined()) continue;
    if (!s.IsString()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": text." + key + " must be a string");
    *into = Printable(s.As<Napi::String>().Utf8Value());
  }
  return text;
}

// Where one line goes: centred at the top or bottom of a picture, scaled to its
// height and shrunk to fit its width. An empty box when there is nothing to draw.
struct LineLayout {
  cv::Rect box;
  cv::Point origin;
  double scale = 0;
  int thickness = 1;
};

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

LineLayout Layout(const cv::Size& picture, const std::string& text, bool atTop) {
  LineLayout line;
  if (text.empty() || picture.width < 8 || picture.height < 8) return line;
  line.scale = std::max(0.35, picture.height / 720.0 * 1.1);
  line.thickness = std::max(1, static_cast<int>(std::lround(line.scale * 1.8)));
  int baseline = 0;
  cv::Size size = cv::getTextSize(text, kFont, line.scale, line.thickness, &baseline);
  const int margin = std::max(2, picture.height / 60);
  const int maxWidth = picture.width - 4 * margin;
  if (size.width > maxWidth && size.width > 0) {
    line.scale *= static_cast<double>(maxWidth) / size.width;
    line.thickness = std::max(1, static_cast<int>(std::lround(line.scale * 1.8)));
    size = cv::getTextSize(text, kFont, line.scale, line.thickness, &baseline);
  }
  const int pad = std::max(2, size.height / 3);
  cv::Rect box(0, 0, size.width + 2 * pad, size.height + baseline + 2 * pad);
  box.x = (picture.width - box.width) / 2;
  box.y = atTop ? margin : picture.height - margin - box.height;
  line.origin = cv::Point(box.x + pad, box.y + pad + size.height);
  line.box = box & cv::Rect(0, 0, picture.width, picture.height);
  return line;
}

// One line's glyphs as coverage (0..255, anti-aliased) over its box, kept until the
// text or the picture's size changes: anti-aliased text costs about 1 ms a line at
// 720p (measured), blending it in a few microseconds, and the info line changes once
// a second while frames come 30 times.
struct RenderedLine {
  std::string text;
  cv::Size picture;
  LineLayout line;
  cv::Mat coverage;
};

RenderedLine renderedTop;
RenderedLine renderedBottom;

const RenderedLine& Render(RenderedLine& cache, const cv::Size& picture, const std::string& text, bool atTop) {
  if (cache.text == text && cache.picture == picture && !cache.coverage.empty()) return cache;
  cache.text = text;
  cache.picture = picture;
  cache.line = Layout(picture, text, atTop);
  cache.coverage = cv::Mat();
  if (cache.line.box.empty()) return cache;
  cache.coverage = cv::Mat::zeros(cache.line.box.size(), CV_8UC1);
  cv::putText(cache.coverage, text, cache.line.origin - cache.line.box.tl(), kFont, cache.line.scale, cv::Scalar(255), cache.line.thickness,
              cv::LINE_AA);
  return cache;
}

// Draws one line on a darkened box (tinted red for a warning), so it reads on any
// picture. Touches `image` within the line's box only.
void DrawLine(cv::Mat& image, const RenderedLine& rendered, bool warning) {
  if (rendered.coverage.empty()) return;
  cv::Mat area = image(rendered.line.box);
  // Translucent: the picture stays visible through the box at a third of its brightness.
  area.convertTo(area, -1, 0.35, 0);
  if (warning) area += cv::Scalar(0, 0, 110);
  // White text over it, by its coverage.
  for (int y = 0; y < area.rows; y++) {
    const uchar* a = rendered.coverage.ptr<uchar>(y);
    uchar* p = area.ptr<uchar>(y);
    for (int x = 0; x < area.cols; x++) {
      const int k = a[x];
      if (k == 0) continue;
      for (int c = 0; c < 3; c++) p[3 * x + c] = static_cast<uchar>(p[3 * x + c] + ((255 - p[3 * x + c]) * k + 127) / 255);
    }
  }
}

// How many columns and rows to add to `picture` (full screen) so it has the screen's
// shape, within the largest picture the addon makes; 0 x 0 when none.
cv::Size Padding(const cv::Mat& picture) {
  if (!fullScreen || screenSize.width <= 0 || screenSize.height <= 0) return cv::Size();
  const double screen = static_cast<double>(screenSize.width) / screenSize.height;
  const double shape = static_cast<double>(picture.cols) / picture.rows;
  int padX = 0;
  int padY = 0;
  if (shape > screen) padY = static_cast<int>(std::lround(picture.cols / screen)) - picture.rows;
  else padX = static_cast<int>(std::lround(picture.rows * screen)) - picture.cols;
  if (padX < 0 || padY < 0 || picture.cols + padX > kMaxPictureWidth || picture.rows + padY > kMaxPictureHeight) return cv::Size();
  return cv::Size(padX, padY);
}

// Shows `picture` with `text` and leaves it as it was. Padded (full screen), the copy
// padding makes is drawn on; otherwise the text goes on the picture itself and only the
// boxes under it are saved and put back, rather than copying the whole picture.
void Show(const std::string& name, cv::Mat& picture, const WindowText& text) {
  const cv::Size pad = Padding(picture);
  const RenderedLine& top = Render(renderedTop, picture.size(), text.top, true);
  const RenderedLine& bottom = Render(renderedBottom, picture.size(), text.bottom, false);
  if (pad.width > 0 || pad.height > 0) {
    cv::Mat out;
    cv::copyMakeBorder(picture, out, pad.height / 2, pad.height - pad.height / 2, pad.width / 2, pad.width - pad.width / 2,
                       cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
    cv::Mat inner = out(cv::Rect(pad.width / 2, pad.height / 2, picture.cols, picture.rows));
    DrawLine(inner, top, true);
    DrawLine(inner, bottom, false);
    cv::imshow(name, out);
    return;
  }
  cv::Mat savedTop = top.coverage.empty() ? cv::Mat() : picture(top.line.box).clone();
  cv::Mat savedBottom = bottom.coverage.empty() ? cv::Mat() : picture(bottom.line.box).clone();
  // Bottom first when putting back: where the two overlap (a very short picture) the
  // top's saved box, taken before anything was drawn, is the clean one.
  auto restore = [&] {
    if (!savedBottom.empty()) savedBottom.copyTo(picture(bottom.line.box));
    if (!savedTop.empty()) savedTop.copyTo(picture(top.line.box));
  };
  DrawLine(picture, top, true);
  DrawLine(picture, bottom, false);
  // imshow copies the picture into the window's own buffer: the boxes can go back at once.
  try {
    cv::imshow(name, picture);
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

// The X screen's size through the connection window.cc holds; Xlib is already loaded.
// Also whether a window manager runs (it sets _NET_SUPPORTING_WM_CHECK on the root).
struct ScreenInfo {
  cv::Size size;
  bool windowManager = false;
};

ScreenInfo QueryScreen() {
  ScreenInfo info;
  void* display = HeldXDisplay();
  if (display == nullptr) return info;
  void* x11 = dlopen("libX11.so.6", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
  if (x11 == nullptr) return info;
  using IntFn = int (*)(void*, int);
  using ScreenFn = int (*)(void*);
  using RootFn = unsigned long (*)(void*);
  using AtomFn = unsigned long (*)(void*, const char*, int);
  using PropFn = int (*)(void*, unsigned long, unsigned long, long, long, int, unsigned long, unsigned long*, int*, unsigned long*,
                         unsigned long*, unsigned char**);
  using FreeFn = int (*)(void*);
  auto defaultScreen = reinterpret_cast<ScreenFn>(dlsym(x11, "XDefaultScreen"));
  auto width = reinterpret_cast<IntFn>(dlsym(x11, "XDisplayWidth"));
  auto height = reinterpret_cast<IntFn>(dlsym(x11, "XDisplayHeight"));
  auto root = reinterpret_cast<RootFn>(dlsym(x11, "XDefaultRootWindow"));
  auto atom = reinterpret_cast<AtomFn>(dlsym(x11, "XInternAtom"));
  auto property = reinterpret_cast<PropFn>(dlsym(x11, "XGetWindowProperty"));
  auto xfree = reinterpret_cast<FreeFn>(dlsym(x11, "XFree"));
  if (defaultScreen && width && height) {
    int screen = defaultScreen(display);
    info.size = cv::Size(width(display, screen), height(display, screen));
  }
  if (root && atom && property && xfree) {
    unsigned long check = atom(display, "_NET_SUPPORTING_WM_CHECK", 1);
    if (check != 0) {
      unsigned long type = 0, items = 0, after = 0;
      int format = 0;
      unsigned char* data = nullptr;
      if (property(display, root(display), check, 0, 1, 0, 0, &type, &format, &items, &after, &data) == 0) info.windowManager = items > 0;
      if (data != nullptr) xfree(data);
    }
  }
  dlclose(x11);  // RTLD_NOLOAD took a reference of its own: give it back
  return info;
}

// redrawWindow(name, text?) -> boolean: the last picture again with `text`; false before the first.
Napi::Value RedrawWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "redrawWindow", "name");
  WindowText text = TextArg(info, 1, "redrawWindow");
  if (HeldXDisplay() == nullptr) throw Napi::Error::New(env, "no X display: redrawWindow before openWindow");
  return Guard(env, "redrawWindow", [&]() -> Napi::Value {
    if (shownPicture.empty()) return Napi::Boolean::New(env, false);
    Show(name, shownPicture, text);
    return Napi::Boolean::New(env, true);
  });
}

// setWindowFullScreen(name, on) -> {width, height, key}: the screen's size, and a key
// pressed meanwhile (-1 for none). Full screen is asked of the window manager; without
// one (a bare X server) the window is moved and sized to the screen itself, once Qt's
// event loop has let go of the picture's size (measured: a resize in the same turn is
// ignored), which may read a key. Off, the window follows the picture's size again.
Napi::Value SetWindowFullScreen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "setWindowFullScreen", "name");
  if (!info[1].IsBoolean()) throw Napi::TypeError::New(env, "setWindowFullScreen: on must be a boolean");
  bool on = info[1].As<Napi::Boolean>().Value();
  if (HeldXDisplay() == nullptr) throw Napi::Error::New(env, "no X display: setWindowFullScreen before openWindow");
  ScreenInfo screen = QueryScreen();
  int key = -1;
  Guard(env, "setWindowFullScreen", [&] {
    if (on) {
      // An autosized window cannot grow past its picture; a normal one scales it, keeping the aspect.
      cv::setWindowProperty(name, cv::WND_PROP_AUTOSIZE, cv::WINDOW_NORMAL);
      cv::setWindowProperty(name, cv::WND_PROP_FULLSCREEN, cv::WINDOW_FULLSCREEN);
      if (!screen.windowManager && screen.size.width > 0) {
        key = cv::waitKey(1);
        cv::moveWindow(name, 0, 0);
        cv::resizeWindow(name, screen.size.width, screen.size.height);
      }
    } else {
      cv::setWindowProperty(name, cv::WND_PROP_FULLSCREEN, cv::WINDOW_NORMAL);
      cv::setWindowProperty(name, cv::WND_PROP_AUTOSIZE, cv::WINDOW_AUTOSIZE);
    }
  });
  fullScreen = on;
  screenSize = on ? screen.size : cv::Size();
  Napi::Object out = Napi::Object::New(env);
  out.Set("width", screen.size.width);
  out.Set("height", screen.size.height);
  out.Set("key", key);
  return out;
}

}  // namespace

WindowText ReadWindowText(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  return TextArg(info, index, fn);
}

void ShowOnWindow(const std::string& name, cv::Mat picture, const WindowText& text) {
  Show(name, picture, text);
  shownPicture = std::move(picture);
}

void ForgetWindowPicture() {
  shownPicture.release();
  renderedTop = RenderedLine();
  renderedBottom = RenderedLine();
  fullScreen = false;
  screenSize = cv::Size();
}

void InitWindowView(Napi::Env env, Napi::Object exports) {
  exports.Set("redrawWindow", Napi::Function::New<RedrawWindow>(env, "redrawWindow"));
  exports.Set("setWindowFullScreen", Napi::Function::New<SetWindowFullScreen>(env, "setWindowFullScreen"));
}

}  // namespace lancam
