// Capture: a cv::VideoCapture whose reads run on a worker thread and come back
// as JPEG. One operation at a time per object; a second one is rejected.
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "lancam.h"

namespace lancam {
namespace {

using Clock = std::chrono::steady_clock;

int PropertyId(Napi::Env env, const std::string& name) {
  if (name == "width") return cv::CAP_PROP_FRAME_WIDTH;
  if (name == "height") return cv::CAP_PROP_FRAME_HEIGHT;
  if (name == "fps") return cv::CAP_PROP_FPS;
  if (name == "fourcc") return cv::CAP_PROP_FOURCC;
  if (name == "posFrames") return cv::CAP_PROP_POS_FRAMES;
  if (name == "frameCount") return cv::CAP_PROP_FRAME_COUNT;
  if (name == "bufferSize") return cv::CAP_PROP_BUFFERSIZE;
  throw Napi::TypeError::New(env, "unknown capture property: " + name);
}

class Capture : public Napi::ObjectWrap<Capture> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Capture",
                       {
                           InstanceMethod<&Capture::Open>("open"),
                           InstanceMethod<&Capture::ReadJpeg>("readJpeg"),
                           InstanceMethod<&Capture::Set>("set"),
                           InstanceMethod<&Capture::Get>("get"),
                           InstanceMethod<&Capture::SetFourcc>("setFourcc"),
                           InstanceMethod<&Capture::GetFourcc>("getFourcc"),
                           InstanceMethod<&Capture::BackendName>("backendName"),
                           InstanceMethod<&Capture::IsOpened>("isOpened"),
                           InstanceMethod<&Capture::Release>("release"),
                       });
  }

  explicit Capture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Capture>(info) {}

 private:
  class OpenWorker;
  class ReadWorker;

  // open(source: number | string, api: "any" | "ffmpeg" | "gstreamer"): Promise<boolean>
  Napi::Value Open(const Napi::CallbackInfo& info);
  // readJpeg(quality): Promise<{jpeg, width, height, ageMicros} | null>
  Napi::Value ReadJpeg(const Napi::CallbackInfo& info);

  Napi::Value Set(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    int id = PropertyId(env, info[0].As<Napi::String>());
    double value = info[1].As<Napi::Number>();
    return Napi::Boolean::New(env, Guard(env, "capture set", [&] { return cap_.set(id, value); }));
  }

  Napi::Value Get(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    int id = PropertyId(env, info[0].As<Napi::String>());
    return Napi::Number::New(env, Guard(env, "capture get", [&] { return cap_.get(id); }));
  }

  Napi::Value SetFourcc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    std::string code = info[0].As<Napi::String>();
    if (code.size() != 4) throw Napi::TypeError::New(env, "FOURCC must be 4 characters, got \"" + code + "\"");
    int fourcc = cv::VideoWriter::fourcc(code[0], code[1], code[2], code[3]);
    return Napi::Boolean::New(env, Guard(env, "capture set FOURCC", [&] { return cap_.set(cv::CAP_PROP_FOURCC, fourcc); }));
  }

  Napi::Value GetFourcc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    int v = static_cast<int>(Guard(env, "capture get FOURCC", [&] { return cap_.get(cv::CAP_PROP_FOURCC); }));
    std::string code;
    for (int i = 0; i < 4; i++) {
      char c = static_cast<char>((v >> (8 * i)) & 0xFF);
      code += (c >= 32 && c < 127) ? c : '?';
    }
    return Napi::String::New(env, v == 0 ? "" : code);
  }

  Napi::Value BackendName(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    if (!cap_.isOpened()) return Napi::String::New(env, "");
    return Napi::String::New(env, Guard(env, "capture backend", [&] { return cap_.getBackendName(); }));
  }

  // From JS-thread state: asking cap_ during a read would race the worker.
  Napi::Value IsOpened(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), opened_); }

  // Releasing under a running read would pull the device from under it, so the
  // read's completion does it instead.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    opened_ = false;
    if (busy_) {
      releasePending_ = true;
    } else {
      Guard(info.Env(), "capture release", [&] { cap_.release(); });
    }
    return info.Env().Undefined();
  }

  static constexpr const char* kBusy = "capture is busy: an open or read is still running";

  void CheckIdle(Napi::Env env) const {
    if (busy_) throw Napi::Error::New(env, kBusy);
  }

  // Worker completion, on the JS thread.
  void Settle() {
    busy_ = false;
    if (releasePending_) {
      releasePending_ = false;
      try {
        cap_.release();
      } catch (...) {
        // release() has long returned to its caller; there is no one to tell.
      }
    }
  }

  cv::VideoCapture cap_;
  // Reused across reads: fresh per-frame buffers cost a page fault per 4 KiB.
  cv::Mat frame_;
  std::vector<uchar> jpeg_;
  std::vector<int> params_{cv::IMWRITE_JPEG_QUALITY, 80};
  bool busy_ = false;            // touched on the JS thread only
  bool releasePending_ = false;  // ditto
  bool opened_ = false;          // ditto
};

class Capture::OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, Capture* owner, int index, std::string path, int api)
      : PromiseWorker(env, "cannot open capture"), owner_(owner), self_(Napi::Persistent(owner->Value())),
        index_(index), path_(std::move(path)), api_(api) {}

 private:
  void Run() override {
    cv::VideoCapture& cap = owner_->cap_;
    opened_ = path_.empty() ? cap.open(index_, api_) : cap.open(path_, api_);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, opened_); }
  void Finish() override {
    owner_->opened_ = opened_ && !owner_->releasePending_;
    owner_->Settle();
  }

  Capture* owner_;
  Napi::ObjectReference self_;  // keeps the JS object (and owner_) alive meanwhile
  int index_;
  std::string path_;
  int api_;
  bool opened_ = false;
};

class Capture::ReadWorker : public PromiseWorker {
 public:
  ReadWorker(Napi::Env env, Capture* owner)
      : PromiseWorker(env, "capture read failed"), owner_(owner), self_(Napi::Persistent(owner->Value())) {}

 private:
  void Run() override {
    Capture& c = *owner_;
    if (!c.cap_.isOpened()) throw std::runtime_error("the capture is not open");
    if (!c.cap_.read(c.frame_) || c.frame_.empty()) return;  // end of stream
    grabbedAt_ = Clock::now();
    if (!cv::imencode(".jpg", c.frame_, c.jpeg_, c.params_)) throw std::runtime_error("JPEG encoding failed");
    got_ = true;
  }

  Napi::Value Result(Napi::Env env) override {
    if (!got_) return env.Null();
    Capture& c = *owner_;
    Napi::Object out = Napi::Object::New(env);
    out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, c.jpeg_.data(), c.jpeg_.size()));
    out.Set("width", c.frame_.cols);
    out.Set("height", c.frame_.rows);
    // Age rather than a timestamp, so JS can subtract it from its own clock.
    auto age = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - grabbedAt_);
    out.Set("ageMicros", static_cast<double>(age.count()));
    return out;
  }

  void Finish() override { owner_->Settle(); }

  Capture* owner_;
  Napi::ObjectReference self_;
  Clock::time_point grabbedAt_;
  bool got_ = false;
};

Napi::Value Capture::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  int index = -1;
  std::string path;
  if (info[0].IsNumber()) {
    index = info[0].As<Napi::Number>().Int32Value();
  } else if (info[0].IsString()) {
    path = info[0].As<Napi::String>().Utf8Value();
    if (path.empty()) throw Napi::TypeError::New(env, "open: empty source");
  } else {
    throw Napi::TypeError::New(env, "open: expected a camera index or a path/pipeline string");
  }
  std::string apiName = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "any";
  int api = cv::CAP_ANY;
  if (apiName == "gstreamer") {
    api = cv::CAP_GSTREAMER;
  } else if (apiName == "ffmpeg") {
    // For files: with CAP_ANY a file FFmpeg rejects is handed on to GStreamer,
    // which fails again with noisier errors. Builds without FFmpeg keep CAP_ANY.
    if (cv::videoio_registry::hasBackend(cv::CAP_FFMPEG)) api = cv::CAP_FFMPEG;
  } else if (apiName != "any") {
    throw Napi::TypeError::New(env, "open: unknown api \"" + apiName + "\" (any, ffmpeg, gstreamer)");
  }
  auto* worker = new OpenWorker(env, this, index, path, api);
  busy_ = true;
  worker->Queue();
  return worker->Promise();
}

Napi::Value Capture::ReadJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  int quality = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 80;
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "readJpeg: quality must be 1..100");
  params_[1] = quality;
  auto* worker = new ReadWorker(env, this);
  busy_ = true;
  worker->Queue();
  return worker->Promise();
}

}  // namespace

void InitCapture(Napi::Env env, Napi::Object exports) {
  // OpenCV prints a WARN line for every backend that fails to open a source;
  // lancam reports the failure itself, so keep only errors unless asked.
  if (std::getenv("OPENCV_LOG_LEVEL") == nullptr) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  }
  exports.Set("Capture", Capture::Define(env));
}

}  // namespace lancam
