// Window: show JPEG frames with highgui (Qt here) and read keys. All calls run
// on the JS thread, which is the thread Qt's event loop belongs to.
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>

#include "lancam.h"

namespace lancam {
namespace {

// The picture decodeForWindow produced, waiting for showDecoded, which draws and
// releases it. Touched only on the JS thread that called them (the worker hands it
// over in OnOK); windows belong to the main thread anyway, so no lock.
cv::Mat decodedForWindow;

// Qt abort()s the whole process when it cannot reach the display, so ask Xlib
// first. dlopen keeps libX11 a runtime detail instead of a link dependency.
//
// The first connection that works is kept open for the life of the process: an
// X server resets when its last client disconnects (Xvfb does, measured) and
// refuses connections meanwhile, so probe-and-close would make the very next
// connection, Qt's, fail and abort.
void* heldDisplay = nullptr;

bool XDisplayOpens() {
  if (heldDisplay != nullptr) return true;
  const char* name = std::getenv("DISPLAY");
  if (name == nullptr || *name == '\0') return false;
  void* x11 = dlopen("libX11.so.6", RTLD_LAZY | RTLD_LOCAL);
  if (x11 == nullptr) return false;
  using OpenFn = void* (*)(const char*);
  auto open = reinterpret_cast<OpenFn>(dlsym(x11, "XOpenDisplay"));
  if (open != nullptr) heldDisplay = open(name);
  if (heldDisplay == nullptr) dlclose(x11);  // else libX11 must stay for the open Display
  return heldDisplay != nullptr;
}

// Qt is only touched once a display has been seen.
void RequireDisplay(Napi::Env env) {
  if (XDisplayOpens()) return;
  const char* name = std::getenv("DISPLAY");
  throw Napi::Error::New(env, std::string("no X display: ") +
                                  (name && *name ? "cannot open DISPLAY=" + std::string(name) : "DISPLAY is not set"));
}

Napi::Value DisplayAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), XDisplayOpens());
}

// openWindow(name): creates the window now rather than on the first frame.
Napi::Value OpenWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "openWindow", "name");
  RequireDisplay(env);
  Guard(env, "openWindow", [&] { cv::namedWindow(name, cv::WINDOW_AUTOSIZE | cv::WINDOW_GUI_NORMAL); });
  return env.Undefined();
}

// pollKey(ms): the key pressed within ms (at least 1), or -1.
Napi::Value PollKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ms = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  RequireDisplay(env);
  // waitKey(0) would block forever.
  return Napi::Number::New(env, Guard(env, "pollKey", [&] { return cv::waitKey(ms < 1 ? 1 : ms); }));
}

// windowVisible(name): false once the user has closed the window (its close button).
Napi::Value WindowVisible(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "windowVisible", "name");
  if (heldDisplay == nullptr) return Napi::Boolean::New(env, false);
  return Guard(env, "windowVisible", [&]() -> Napi::Value {
    return Napi::Boolean::New(env, cv::getWindowProperty(name, cv::WND_PROP_VISIBLE) >= 1.0);
  });
}

// windowImageSize(name) -> {width, height}: the size of the picture area (what the
// window shows frames at), so tests can check the window keeps its size.
Napi::Value WindowImageSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "windowImageSize", "name");
  RequireDisplay(env);
  return Guard(env, "windowImageSize", [&]() -> Napi::Value {
    cv::Rect r = cv::getWindowImageRect(name);
    Napi::Object out = Napi::Object::New(env);
    out.Set("width", r.width);
    out.Set("height", r.height);
    return out;
  });
}

Napi::Value CloseWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "closeWindow", "name");
  if (heldDisplay == nullptr) return env.Undefined();  // no window can have been opened
  Guard(env, "closeWindow", [&] {
    decodedForWindow.release();
    ForgetWindowPicture();
    cv::destroyWindow(name);
    cv::waitKey(1);  // let Qt process the close so the window really goes away
  });
  return env.Undefined();
}


// decodeForWindow(jpeg, width?, height?) -> Promise<boolean>: decodes on a worker
// thread so the JS thread only draws; with a size, scales the picture to it there too
// (a smaller quality layer fills the window it had). The bytes are copied first (the
// caller reuses its buffer). One at a time: the caller waits for the promise before the next.
class DecodeForWindowWorker : public PromiseWorker {
 public:
  DecodeForWindowWorker(Napi::Env env, const uint8_t* data, size_t size, int width, int height)
      : PromiseWorker(env, "decodeForWindow"), bytes_(data, data + size), width_(width), height_(height) {}

 protected:
  void Run() override {
    image_ = DecodeJpegBgr(bytes_.data(), bytes_.size(), nullptr);
    if (image_.empty() || width_ == 0 || (image_.cols == width_ && image_.rows == height_)) return;
    cv::Mat scaled;
    cv::resize(image_, scaled, cv::Size(width_, height_), 0, 0, cv::INTER_LINEAR);
    image_ = std::move(scaled);
  }
  Napi::Value Result(Napi::Env env) override {
    if (image_.empty()) return Napi::Boolean::New(env, false);
    decodedForWindow = std::move(image_);
    return Napi::Boolean::New(env, true);
  }

 private:
  std::vector<uchar> bytes_;
  int width_;
  int height_;
  cv::Mat image_;
};

Napi::Value DecodeForWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto jpeg = Uint8ArrayArg(info, 0, "decodeForWindow", "jpeg");
  int width = 0;
  int height = 0;
  if (!info[1].IsUndefined()) {
    width = Int32Arg(info, 1, "decodeForWindow", "width");
    height = Int32Arg(info, 2, "decodeForWindow", "height");
    // The scaled picture is allocated too: held to the same limit as a decoded one.
    if (width < kMinPictureSide || height < kMinPictureSide || width > kMaxPictureWidth || height > kMaxPictureHeight) {
      throw Napi::RangeError::New(env, "decodeForWindow: width x height must be within " + std::to_string(kMinPictureSide) + ".." +
                                           std::to_string(kMaxPictureWidth) + " x " + std::to_string(kMinPictureSide) + ".." +
                                           std::to_string(kMaxPictureHeight));
    }
  }
  auto* worker = new DecodeForWindowWorker(env, jpeg.Data(), jpeg.ByteLength(), width, height);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// showDecoded(name, text?): draws what decodeForWindow last produced, with `text` on it
// (window-view.cc, which keeps the picture for redrawWindow); false when nothing is waiting.
Napi::Value ShowDecoded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "showDecoded", "name");
  WindowText text = ReadWindowText(info, 1, "showDecoded");
  RequireDisplay(env);
  return Guard(env, "showDecoded", [&]() -> Napi::Value {
    if (decodedForWindow.empty()) return Napi::Boolean::New(env, false);
    ShowOnWindow(name, std::move(decodedForWindow), text);
    decodedForWindow.release();
    return Napi::Boolean::New(env, true);
  });
}

}  // namespace

void* HeldXDisplay() {
  return heldDisplay;
}

void InitWindow(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeForWindow", Napi::Function::New<DecodeForWindow>(env, "decodeForWindow"));
  exports.Set("showDecoded", Napi::Function::New<ShowDecoded>(env, "showDecoded"));
  exports.Set("displayAvailable", Napi::Function::New<DisplayAvailable>(env, "displayAvailable"));
  exports.Set("openWindow", Napi::Function::New<OpenWindow>(env, "openWindow"));
  exports.Set("pollKey", Napi::Function::New<PollKey>(env, "pollKey"));
  exports.Set("windowVisible", Napi::Function::New<WindowVisible>(env, "windowVisible"));
  exports.Set("closeWindow", Napi::Function::New<CloseWindow>(env, "closeWindow"));
  exports.Set("windowImageSize", Napi::Function::New<WindowImageSize>(env, "windowImageSize"));
}

}  // namespace lancam
