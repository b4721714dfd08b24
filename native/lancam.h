// Shared pieces of the lancam addon: registration hooks and the error guard.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include <opencv2/core.hpp>

namespace lancam {

// One hook per concern; addon.cc only calls these.
void InitCapture(Napi::Env env, Napi::Object exports);
void InitDevices(Napi::Env env, Napi::Object exports);
void InitCodec(Napi::Env env, Napi::Object exports);
void InitWindow(Napi::Env env, Napi::Object exports);
void InitTestPattern(Napi::Env env, Napi::Object exports);
void InitOverlay(Napi::Env env, Napi::Object exports);
void InitWindowView(Napi::Env env, Napi::Object exports);
void InitOpus(Napi::Env env, Napi::Object exports);

// The largest picture the addon decodes from caller bytes or renders: the largest
// frame a lancam server sends. A JPEG header can claim 65535x65535 in a few hundred
// bytes, and libjpeg fills the missing data in. Exported to TypeScript as
// `maxPicture`; lib/native/cv.ts MAX_PICTURE must agree (tests/cv.test.ts checks).
constexpr int kMaxPictureWidth = 7680;
constexpr int kMaxPictureHeight = 4320;
// The smallest side of a picture the addon renders (`--size`'s lower bound), exported
// as `minPictureSide` (lib/native/cv.ts MIN_PICTURE_SIDE).
constexpr int kMinPictureSide = 16;

// The size in a JPEG's first SOFn frame header; false (and the outputs untouched)
// when the bytes do not start with a well-formed header. Same walk as
// lib/wire/jpeg-header.ts.
bool ReadJpegSize(const uchar* data, size_t size, int* width, int* height);

// Decodes JPEG bytes from a caller into packed BGR after checking the header
// against kMaxPictureWidth x kMaxPictureHeight, so nothing larger is allocated.
// An empty Mat when refused or undecodable, with the reason in `why` (when given).
cv::Mat DecodeJpegBgr(const uchar* data, size_t size, std::string* why);

// The viewer window's text over its picture (window-view.cc): a status line at the top
// and an info line at the bottom, each left out when empty.
struct WindowText {
  std::string top;
  std::string bottom;
};

// The X connection window.cc holds open for the process, or nullptr before a display opened.
void* HeldXDisplay();
// Reads argument `index` ({top?, bottom?}, or undefined for none) as a WindowText; a TypeError otherwise.
WindowText ReadWindowText(const Napi::CallbackInfo& info, size_t index, const char* fn);
// Shows `picture` in window `name` with `text` drawn over it, and keeps it, clean, for redrawWindow.
void ShowOnWindow(const std::string& name, cv::Mat picture, const WindowText& text);
// Drops the kept picture and the full-screen state (the window closed).
void ForgetWindowPicture();

// Argument checks: a TypeError "fn: arg must be ..." instead of N-API's generic
// "A number was expected", or reading a Float32Array's bytes as pixels.
inline Napi::Uint8Array Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* arg) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + arg + " must be a Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

inline std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* arg) {
  Napi::Value v = info[index];
  if (!v.IsString()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + arg + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline int32_t Int32Arg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* arg) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + arg + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

// An errno as its name where TypeScript picks a fix by it ("EBUSY", "EACCES"), else
// the C library's text for it.
inline std::string ErrnoName(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case ENOTTY: return "ENOTTY";
    default: return std::strerror(err);
  }
}

// "context: reason". OpenCV's `err` is the reason alone; `what()` would add the
// source path of the OpenCV build, which means nothing to a user.
inline std::string Describe(const std::string& context, const std::exception& e) {
  if (auto cv = dynamic_cast<const cv::Exception*>(&e)) {
    return context + ": " + cv->err + " (OpenCV " + cv->func + ")";
  }
  return context + ": " + e.what();
}

// Runs `fn` and turns any C++ exception into a JS Error, so none crosses the
// N-API boundary (Qt or OpenCV may throw from deep inside a call).
template <typename F>
auto Guard(Napi::Env env, const char* context, F&& fn) -> decltype(fn()) {
  try {
    return std::forward<F>(fn)();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, Describe(context, e));
  } catch (...) {
    throw Napi::Error::New(env, std::string(context) + ": unknown native exception");
  }
}

// A promise already rejected with `message`: promise-returning entry points
// report "busy" this way rather than throwing synchronously.
inline Napi::Value RejectedPromise(Napi::Env env, const std::string& message) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(Napi::Error::New(env, message).Value());
  return deferred.Promise();
}

// An AsyncWorker that settles a Promise. Subclasses fill Run() (worker thread)
// and Result() (JS thread); a thrown exception in Run() rejects with its reason.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* context)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), context_(context) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  // Called on the JS thread after either outcome, before the promise settles.
  virtual void Finish() {}

 private:
  void Execute() override {
    try {
      Run();
    } catch (const std::exception& e) {
      SetError(Describe(context_, e));
    } catch (...) {
      SetError(context_ + ": unknown native exception");
    }
  }
  void OnOK() override {
    Finish();
    Napi::Env env = Env();
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, Describe(context_, e)).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Finish();
    deferred_.Reject(e.Value());
  }

  Napi::Promise::Deferred deferred_;
  std::string context_;
};

}  // namespace lancam
