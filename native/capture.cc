// Capture: a cv::VideoCapture whose reads run on a worker thread and come back
// as JPEG, three ways: decoded to BGR and encoded by OpenCV; raw YUV encoded by
// TurboJPEG (no BGR in between); or the source's own packet, which for MJPEG is
// the JPEG itself. One operation at a time per object; a second one is rejected.
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef __linux__
#include <fcntl.h>
#include <linux/videodev2.h>
#include <sys/ioctl.h>
#include <unistd.h>
#endif

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "lancam.h"
#include "overlay.h"
#include "yuv-encode.h"

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

std::string FourccText(double value) {
  int v = static_cast<int>(value);
  if (v == 0 || v == -1) return "";
  std::string code;
  for (int i = 0; i < 4; i++) {
    char c = static_cast<char>((v >> (8 * i)) & 0xFF);
    code += (c >= 32 && c < 127) ? c : '?';
  }
  return code;
}

// What one read does with the frame it gets.
enum class ReadMode {
  kJpeg,    // decoded to BGR by OpenCV, encoded by imencode
  kYuv,     // a raw YUV packet, encoded by TurboJPEG
  kPacket,  // the raw packet, copied out as it is
  kGrab,    // taken from the source and dropped: nothing decoded (raw) or converted
  kHold,    // read (decoded unless raw) and kept for encodeHeld, which draws the overlay
};

class Capture : public Napi::ObjectWrap<Capture> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Capture",
                       {
                           InstanceMethod<&Capture::Open>("open"),
                           InstanceMethod<&Capture::ReadJpeg>("readJpeg"),
                           InstanceMethod<&Capture::ReadYuvJpeg>("readYuvJpeg"),
                           InstanceMethod<&Capture::ReadPacket>("readPacket"),
                           InstanceMethod<&Capture::Grab>("grab"),
                           InstanceMethod<&Capture::ReadHeld>("readHeld"),
                           InstanceMethod<&Capture::EncodeHeld>("encodeHeld"),
                           InstanceMethod<&Capture::SetRawPackets>("setRawPackets"),
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
  class EncodeHeldWorker;

  // open(source: number | string, api: "any" | "ffmpeg" | "gstreamer"): Promise<boolean>
  Napi::Value Open(const Napi::CallbackInfo& info);
  // readJpeg(quality): Promise<{jpeg, width, height, ageMicros} | null>
  Napi::Value ReadJpeg(const Napi::CallbackInfo& info);
  // readYuvJpeg(layout, width, height, quality, limitedRange):
  //   Promise<{jpeg, width, height, ageMicros} | {jpeg: null, reason, ageMicros} | null>
  Napi::Value ReadYuvJpeg(const Napi::CallbackInfo& info);
  // readPacket(): Promise<{packet, ageMicros} | null>
  Napi::Value ReadPacket(const Napi::CallbackInfo& info);
  // grab(): Promise<boolean>, false at end of stream
  Napi::Value Grab(const Napi::CallbackInfo& info);
  // readHeld(): Promise<{width, height, ageMicros} | null>. The frame stays here for
  // encodeHeld: the overlay's text needs the frame's capture time, known only now.
  Napi::Value ReadHeld(const Napi::CallbackInfo& info);
  // encodeHeld(quality, overlay, yuv?: {layout, width, height, limitedRange}):
  //   Promise<{jpeg, width, height} | {jpeg: null, reason}>
  Napi::Value EncodeHeld(const Napi::CallbackInfo& info);
  Napi::Value QueueRead(Napi::Env env, ReadMode mode);

  // setRawPackets(): boolean. Reads then return what the source delivers, undecoded:
  // the demuxed packet on FFmpeg, the driver's buffer on V4L2. Before the first read.
  Napi::Value SetRawPackets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    return Napi::Boolean::New(env, Guard(env, "capture raw packets", [&] {
      if (!cap_.isOpened()) return false;
      std::string backend = cap_.getBackendName();
      bool ok = false;
      if (backend == "FFMPEG") {
        ok = cap_.set(cv::CAP_PROP_FORMAT, -1);
      } else if (backend == "V4L2") {
        ok = cap_.set(cv::CAP_PROP_CONVERT_RGB, 0);
      }
      return ok;
    }));
  }

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

  // getFourcc(which = "fourcc" | "pixelFormat"): the codec's tag, or (FFmpeg) the
  // pixel format its packets decode to; "" when unknown.
  Napi::Value GetFourcc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckIdle(env);
    std::string which = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "fourcc";
    int prop = cv::CAP_PROP_FOURCC;
    if (which == "pixelFormat") {
      prop = cv::CAP_PROP_CODEC_PIXEL_FORMAT;
    } else if (which != "fourcc") {
      throw Napi::TypeError::New(env, "getFourcc: expected \"fourcc\" or \"pixelFormat\", got \"" + which + "\"");
    }
    return Napi::String::New(env, FourccText(Guard(env, "capture get FOURCC", [&] { return cap_.get(prop); })));
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
    held_ = false;
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
  YuvEncoder yuv_;
  // The request of the read in flight (set on the JS thread before it is queued).
  YuvLayout yuvLayout_ = YuvLayout::kI420;
  int yuvWidth_ = 0;
  int yuvHeight_ = 0;
  bool yuvLimitedRange_ = true;
  bool busy_ = false;            // touched on the JS thread only
  bool releasePending_ = false;  // ditto
  bool opened_ = false;          // ditto
  bool held_ = false;            // ditto: frame_ holds a readHeld frame not yet encoded
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
  ReadWorker(Napi::Env env, Capture* owner, ReadMode mode)
      : PromiseWorker(env, "capture read failed"), owner_(owner), self_(Napi::Persistent(owner->Value())), mode_(mode) {}

 private:
  void Run() override {
    Capture& c = *owner_;
    if (!c.cap_.isOpened()) throw std::runtime_error("the capture is not open");
    if (mode_ == ReadMode::kGrab) {
      got_ = c.cap_.grab();
      return;
    }
    if (!c.cap_.read(c.frame_) || c.frame_.empty()) return;  // end of stream
    grabbedAt_ = Clock::now();
    got_ = true;
    switch (mode_) {
      case ReadMode::kJpeg:
        if (!cv::imencode(".jpg", c.frame_, c.jpeg_, c.params_)) throw std::runtime_error("JPEG encoding failed");
        break;
      case ReadMode::kYuv:
        // A raw packet is one row of bytes; a V4L2 buffer may come as rows of pixels.
        if (!c.frame_.isContinuous()) {
          reason_ = "the raw frame is not one block of memory";
        } else {
          encoded_ = c.yuv_.Encode(c.frame_.data, c.frame_.total() * c.frame_.elemSize(), c.yuvWidth_, c.yuvHeight_,
                                   c.yuvLayout_, c.yuvLimitedRange_, c.params_[1], &reason_);
        }
        break;
      case ReadMode::kPacket:
        if (!c.frame_.isContinuous()) throw std::runtime_error("the raw packet is not one block of memory");
        break;
      case ReadMode::kGrab:
      case ReadMode::kHold:
        break;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    if (mode_ == ReadMode::kGrab) return Napi::Boolean::New(env, got_);
    if (!got_) return env.Null();
    Capture& c = *owner_;
    Napi::Object out = Napi::Object::New(env);
    switch (mode_) {
      case ReadMode::kJpeg:
        out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, c.jpeg_.data(), c.jpeg_.size()));
        out.Set("width", c.frame_.cols);
        out.Set("height", c.frame_.rows);
        break;
      case ReadMode::kYuv:
        if (encoded_) {
          out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, c.yuv_.data(), c.yuv_.size()));
          out.Set("width", c.yuvWidth_);
          out.Set("height", c.yuvHeight_);
        } else {
          out.Set("jpeg", env.Null());
          out.Set("reason", reason_);
        }
        break;
      case ReadMode::kPacket:
        out.Set("packet", Napi::Buffer<uchar>::Copy(env, c.frame_.data, c.frame_.total() * c.frame_.elemSize()));
        break;
      case ReadMode::kHold:
        out.Set("width", c.frame_.cols);
        out.Set("height", c.frame_.rows);
        break;
      case ReadMode::kGrab:
        break;
    }
    // Age rather than a timestamp, so JS can subtract it from its own clock.
    auto age = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - grabbedAt_);
    out.Set("ageMicros", static_cast<double>(age.count()));
    return out;
  }

  void Finish() override {
    owner_->held_ = mode_ == ReadMode::kHold && got_;
    owner_->Settle();
  }

  Capture* owner_;
  Napi::ObjectReference self_;
  ReadMode mode_;
  Clock::time_point grabbedAt_;
  bool got_ = false;
  bool encoded_ = false;
  std::string reason_;
};

// Encodes the held frame with the overlay drawn: decoded BGR through imencode, or
// raw YUV through TurboJPEG (drawn on the planes). Like readYuvJpeg, a raw frame
// that does not fit its layout is a result with the reason, not a rejection.
class Capture::EncodeHeldWorker : public PromiseWorker {
 public:
  EncodeHeldWorker(Napi::Env env, Capture* owner, Overlay overlay, bool yuv)
      : PromiseWorker(env, "capture encode failed"), owner_(owner), self_(Napi::Persistent(owner->Value())),
        overlay_(std::move(overlay)), yuv_(yuv) {}

 private:
  void Run() override {
    Capture& c = *owner_;
    if (yuv_) {
      if (!c.frame_.isContinuous()) {
        reason_ = "the raw frame is not one block of memory";
        return;
      }
      encoded_ = c.yuv_.Encode(c.frame_.data, c.frame_.total() * c.frame_.elemSize(), c.yuvWidth_, c.yuvHeight_,
                               c.yuvLayout_, c.yuvLimitedRange_, c.params_[1], &reason_, &overlay_);
      return;
    }
    if (c.frame_.type() != CV_8UC3) throw std::runtime_error("the held frame is not a BGR picture");
    DrawOverlayBgr(c.frame_, overlay_);
    if (!cv::imencode(".jpg", c.frame_, c.jpeg_, c.params_)) throw std::runtime_error("JPEG encoding failed");
    encoded_ = true;
  }

  Napi::Value Result(Napi::Env env) override {
    Capture& c = *owner_;
    Napi::Object out = Napi::Object::New(env);
    if (!encoded_) {
      out.Set("jpeg", env.Null());
      out.Set("reason", reason_);
    } else if (yuv_) {
      out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, c.yuv_.data(), c.yuv_.size()));
      out.Set("width", c.yuvWidth_);
      out.Set("height", c.yuvHeight_);
    } else {
      out.Set("jpeg", Napi::Buffer<uchar>::Copy(env, c.jpeg_.data(), c.jpeg_.size()));
      out.Set("width", c.frame_.cols);
      out.Set("height", c.frame_.rows);
    }
    return out;
  }

  void Finish() override { owner_->Settle(); }

  Capture* owner_;
  Napi::ObjectReference self_;
  Overlay overlay_;
  bool yuv_;
  bool encoded_ = false;
  std::string reason_;
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

Napi::Value Capture::QueueRead(Napi::Env env, ReadMode mode) {
  held_ = false;
  auto* worker = new ReadWorker(env, this, mode);
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
  return QueueRead(env, ReadMode::kJpeg);
}

Napi::Value Capture::ReadYuvJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  std::string layout = StringArg(info, 0, "readYuvJpeg", "layout");
  int width = Int32Arg(info, 1, "readYuvJpeg", "width");
  int height = Int32Arg(info, 2, "readYuvJpeg", "height");
  int quality = Int32Arg(info, 3, "readYuvJpeg", "quality");
  if (layout == "i420") {
    yuvLayout_ = YuvLayout::kI420;
  } else if (layout == "yuyv") {
    yuvLayout_ = YuvLayout::kYuyv;
  } else {
    throw Napi::TypeError::New(env, "readYuvJpeg: layout must be \"i420\" or \"yuyv\", got \"" + layout + "\"");
  }
  if (width < 1 || height < 1 || width > kMaxPictureWidth || height > kMaxPictureHeight) {
    throw Napi::RangeError::New(env, "readYuvJpeg: size must be within 1x1.." + std::to_string(kMaxPictureWidth) + "x" +
                                         std::to_string(kMaxPictureHeight));
  }
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "readYuvJpeg: quality must be 1..100");
  yuvWidth_ = width;
  yuvHeight_ = height;
  yuvLimitedRange_ = !info[4].IsBoolean() || info[4].As<Napi::Boolean>().Value();
  params_[1] = quality;
  return QueueRead(env, ReadMode::kYuv);
}

Napi::Value Capture::ReadPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  return QueueRead(env, ReadMode::kPacket);
}

Napi::Value Capture::ReadHeld(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  return QueueRead(env, ReadMode::kHold);
}

Napi::Value Capture::EncodeHeld(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  int quality = Int32Arg(info, 0, "encodeHeld", "quality");
  if (quality < 1 || quality > 100) throw Napi::RangeError::New(env, "encodeHeld: quality must be 1..100");
  Overlay overlay = OverlayArg(info, 1, "encodeHeld");
  bool yuv = false;
  YuvLayout layout = YuvLayout::kI420;
  int width = 0;
  int height = 0;
  bool limitedRange = true;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsObject()) throw Napi::TypeError::New(env, "encodeHeld: yuv must be {layout, width, height, limitedRange}");
    Napi::Object o = info[2].As<Napi::Object>();
    Napi::Value l = o.Get("layout"), w = o.Get("width"), h = o.Get("height"), r = o.Get("limitedRange");
    if (!l.IsString() || !w.IsNumber() || !h.IsNumber()) {
      throw Napi::TypeError::New(env, "encodeHeld: yuv must be {layout, width, height, limitedRange}");
    }
    std::string name = l.As<Napi::String>().Utf8Value();
    if (name == "i420") {
      layout = YuvLayout::kI420;
    } else if (name == "yuyv") {
      layout = YuvLayout::kYuyv;
    } else {
      throw Napi::TypeError::New(env, "encodeHeld: layout must be \"i420\" or \"yuyv\", got \"" + name + "\"");
    }
    width = w.As<Napi::Number>().Int32Value();
    height = h.As<Napi::Number>().Int32Value();
    if (width < 1 || height < 1 || width > kMaxPictureWidth || height > kMaxPictureHeight) {
      throw Napi::RangeError::New(env, "encodeHeld: size must be within 1x1.." + std::to_string(kMaxPictureWidth) + "x" +
                                           std::to_string(kMaxPictureHeight));
    }
    limitedRange = !r.IsBoolean() || r.As<Napi::Boolean>().Value();
    yuv = true;
  }
  if (!held_) return RejectedPromise(env, "encodeHeld: no frame held (call readHeld first)");
  held_ = false;
  if (yuv) {
    yuvLayout_ = layout;
    yuvWidth_ = width;
    yuvHeight_ = height;
    yuvLimitedRange_ = limitedRange;
  }
  params_[1] = quality;
  auto* worker = new EncodeHeldWorker(env, this, std::move(overlay), yuv);
  busy_ = true;
  worker->Queue();
  return worker->Promise();
}

Napi::Value Capture::Grab(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) return RejectedPromise(env, kBusy);
  return QueueRead(env, ReadMode::kGrab);
}

// probeDevice(path): "" when the device opens and nobody else streams from it, else
// why not as an errno name ("ENOENT", "EACCES", "EBUSY", ...). OpenCV's V4L2 backend
// only says that it failed; this is for telling the user which fix applies.
Napi::Value ProbeDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "probeDevice", "path");
  if (path.rfind("/dev/", 0) != 0 || path.size() > 64 || path.find('\0') != std::string::npos) {
    throw Napi::RangeError::New(env, "probeDevice: path must be a device under /dev/");
  }
#ifndef __linux__
  return Napi::String::New(env, "");  // V4L2 devices are Linux's
#else
  int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Napi::String::New(env, ErrnoName(errno));
  // Another program streaming from it holds its buffer queue: asking to free the
  // queue (zero buffers) is refused with EBUSY then, and changes nothing otherwise.
  v4l2_requestbuffers req{};
  req.count = 0;
  req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  req.memory = V4L2_MEMORY_MMAP;
  std::string result = ::ioctl(fd, VIDIOC_REQBUFS, &req) != 0 && errno == EBUSY ? "EBUSY" : "";
  ::close(fd);
  return Napi::String::New(env, result);
#endif
}

}  // namespace

void InitCapture(Napi::Env env, Napi::Object exports) {
  exports.Set("probeDevice", Napi::Function::New<ProbeDevice>(env, "probeDevice"));
  // OpenCV prints a WARN line for every backend that fails to open a source;
  // lancam reports the failure itself, so keep only errors unless asked.
  if (std::getenv("OPENCV_LOG_LEVEL") == nullptr) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  }
  exports.Set("Capture", Capture::Define(env));
}

}  // namespace lancam
