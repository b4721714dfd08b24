// Camera listing: what each /dev/videoN is and offers (formats, sizes, frame rates),
// asked of its driver with the V4L2 enumeration ioctls, for `--list-cameras`
// (lib/capture/camera-list.ts writes it out). Plain data only: a device that cannot
// be opened is an entry with the errno's name, not an exception, and every list is
// bounded, so a confused driver cannot make the listing endless.
#include <cstdint>
#include <string>
#include <vector>

#ifdef __linux__
#include <fcntl.h>
#include <linux/videodev2.h>
#include <sys/ioctl.h>
#include <unistd.h>
#endif

#include "lancam.h"

namespace lancam {
namespace {

// /dev/video0..63 are tried by opening each: reading /dev would not see the test
// shim's fake devices (tests/helpers/fake-v4l2.c answers open, not readdir), and 64
// nodes are more than any machine with cameras has (a UVC camera makes two).
constexpr int kMaxDevices = 64;
constexpr uint32_t kMaxFormats = 64;
constexpr uint32_t kMaxSizes = 64;
constexpr uint32_t kMaxIntervals = 32;

// Seconds per frame, as V4L2 gives it.
struct Fraction {
  uint32_t numerator = 0;
  uint32_t denominator = 0;
};

struct Rates {
  // "discrete" (intervals), "stepwise" or "continuous" (min, max, step), or
  // "unknown" when the driver does not enumerate them.
  std::string kind = "unknown";
  std::vector<Fraction> intervals;
  Fraction min, max, step;
};

struct Size {
  std::string kind;  // "discrete", "stepwise" or "continuous"
  uint32_t width = 0, height = 0;  // discrete
  uint32_t minWidth = 0, maxWidth = 0, stepWidth = 0, minHeight = 0, maxHeight = 0, stepHeight = 0;
  Rates rates;  // discrete sizes only: a range of sizes has no one rate list
};

struct Format {
  std::string fourcc;
  std::string description;
  bool compressed = false;
  std::vector<Size> sizes;
};

struct Device {
  int index = 0;
  std::string error;  // the errno's name when it could not be opened or asked; "" otherwise
  std::string kind;   // capture, multiplanar, metadata, codec, output or other
  std::string card, driver, bus;
  bool inUse = false;
  std::vector<Format> formats;
};

#ifdef __linux__

int Ioctl(int fd, unsigned long request, void* arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r == -1 && errno == EINTR);
  return r;
}

// A driver's fixed-size text field: up to its first NUL, control bytes shown as '?'
// so a driver's odd name cannot drive the terminal.
std::string FieldText(const uint8_t* field, size_t size) {
  std::string out;
  for (size_t i = 0; i < size && field[i] != 0; i++) {
    char c = static_cast<char>(field[i]);
    out += field[i] < 0x20 || field[i] == 0x7f ? '?' : c;
  }
  return out;
}

std::string FourccText(uint32_t code) {
  std::string out;
  for (int i = 0; i < 4; i++) {
    char c = static_cast<char>((code >> (8 * i)) & 0x7f);
    out += c >= 32 && c < 127 ? c : '?';
  }
  // Bit 31 marks the big-endian variant of a format (v4l2_fourcc_be).
  if (code & (1u << 31)) out += "-BE";
  return out;
}

std::string Kind(uint32_t caps) {
  // Memory-to-memory devices (codecs, scalers) may set the capture bit as well.
  if (caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE)) return "codec";
  if (caps & V4L2_CAP_VIDEO_CAPTURE) return "capture";
  if (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE) return "multiplanar";
#ifdef V4L2_CAP_META_CAPTURE
  if (caps & V4L2_CAP_META_CAPTURE) return "metadata";
#endif
  if (caps & (V4L2_CAP_VIDEO_OUTPUT | V4L2_CAP_VIDEO_OUTPUT_MPLANE)) return "output";
  return "other";
}

Fraction ToFraction(const v4l2_fract& f) { return Fraction{f.numerator, f.denominator}; }

Rates EnumRates(int fd, uint32_t fourcc, uint32_t width, uint32_t height) {
  Rates rates;
  for (uint32_t i = 0; i < kMaxIntervals; i++) {
    v4l2_frmivalenum e{};
    e.index = i;
    e.pixel_format = fourcc;
    e.width = width;
    e.height = height;
    if (Ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &e) != 0) break;
    if (e.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
      rates.kind = "discrete";
      rates.intervals.push_back(ToFraction(e.discrete));
      continue;
    }
    // A range is the one answer, at index 0.
    rates.kind = e.type == V4L2_FRMIVAL_TYPE_CONTINUOUS ? "continuous" : "stepwise";
    rates.min = ToFraction(e.stepwise.min);
    rates.max = ToFraction(e.stepwise.max);
    rates.step = ToFraction(e.stepwise.step);
    break;
  }
  return rates;
}

std::vector<Size> EnumSizes(int fd, uint32_t fourcc) {
  std::vector<Size> sizes;
  for (uint32_t i = 0; i < kMaxSizes; i++) {
    v4l2_frmsizeenum e{};
    e.index = i;
    e.pixel_format = fourcc;
    if (Ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &e) != 0) break;
    Size s;
    if (e.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
      s.kind = "discrete";
      s.width = e.discrete.width;
      s.height = e.discrete.height;
      s.rates = EnumRates(fd, fourcc, s.width, s.height);
      sizes.push_back(std::move(s));
      continue;
    }
    s.kind = e.type == V4L2_FRMSIZE_TYPE_CONTINUOUS ? "continuous" : "stepwise";
    s.minWidth = e.stepwise.min_width;
    s.maxWidth = e.stepwise.max_width;
    s.stepWidth = e.stepwise.step_width;
    s.minHeight = e.stepwise.min_height;
    s.maxHeight = e.stepwise.max_height;
    s.stepHeight = e.stepwise.step_height;
    sizes.push_back(std::move(s));
    break;  // a range is the one answer, at index 0
  }
  return sizes;
}

std::vector<Format> EnumFormats(int fd, uint32_t type) {
  std::vector<Format> formats;
  for (uint32_t i = 0; i < kMaxFormats; i++) {
    v4l2_fmtdesc d{};
    d.index = i;
    d.type = type;
    if (Ioctl(fd, VIDIOC_ENUM_FMT, &d) != 0) break;
    Format f;
    f.fourcc = FourccText(d.pixelformat);
    f.description = FieldText(d.description, sizeof d.description);
    f.compressed = (d.flags & V4L2_FMT_FLAG_COMPRESSED) != 0;
    f.sizes = EnumSizes(fd, d.pixelformat);
    formats.push_back(std::move(f));
  }
  return formats;
}

// Another program streaming from the device owns its buffer queue: asking to free the
// queue (zero buffers) is refused with EBUSY then, and changes nothing otherwise.
bool QueueTaken(int fd, uint32_t type) {
  v4l2_requestbuffers req{};
  req.count = 0;
  req.type = type;
  req.memory = V4L2_MEMORY_MMAP;
  return Ioctl(fd, VIDIOC_REQBUFS, &req) != 0 && errno == EBUSY;
}

// The device at /dev/video<index>; false when there is none (no node, or no driver behind it).
bool ReadDevice(int index, Device* out) {
  out->index = index;
  std::string path = "/dev/video" + std::to_string(index);
  int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) return false;
    out->error = ErrnoName(err);
    return true;
  }
  v4l2_capability cap{};
  if (Ioctl(fd, VIDIOC_QUERYCAP, &cap) != 0) {
    out->error = ErrnoName(errno);
    ::close(fd);
    return true;
  }
  // device_caps describes this node; capabilities, the whole device (all its nodes).
  uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
  out->kind = Kind(caps);
  out->card = FieldText(cap.card, sizeof cap.card);
  out->driver = FieldText(cap.driver, sizeof cap.driver);
  out->bus = FieldText(cap.bus_info, sizeof cap.bus_info);
  if (out->kind == "capture" || out->kind == "multiplanar") {
    uint32_t type = out->kind == "capture" ? V4L2_BUF_TYPE_VIDEO_CAPTURE : V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
    out->formats = EnumFormats(fd, type);
    out->inUse = QueueTaken(fd, type);
  }
  ::close(fd);
  return true;
}

#endif  // __linux__

std::vector<Device> ListDevices() {
  std::vector<Device> devices;
#ifdef __linux__  // V4L2 devices are Linux's: elsewhere there are none to list
  for (int i = 0; i < kMaxDevices; i++) {
    Device d;
    if (ReadDevice(i, &d)) devices.push_back(std::move(d));
  }
#endif
  return devices;
}

Napi::Object FractionObject(Napi::Env env, const Fraction& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("numerator", f.numerator);
  o.Set("denominator", f.denominator);
  return o;
}

Napi::Object RatesObject(Napi::Env env, const Rates& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", r.kind);
  if (r.kind == "discrete") {
    Napi::Array intervals = Napi::Array::New(env, r.intervals.size());
    for (size_t i = 0; i < r.intervals.size(); i++) intervals.Set(static_cast<uint32_t>(i), FractionObject(env, r.intervals[i]));
    o.Set("intervals", intervals);
  } else if (r.kind != "unknown") {
    o.Set("min", FractionObject(env, r.min));
    o.Set("max", FractionObject(env, r.max));
    o.Set("step", FractionObject(env, r.step));
  }
  return o;
}

Napi::Object SizeObject(Napi::Env env, const Size& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", s.kind);
  if (s.kind == "discrete") {
    o.Set("width", s.width);
    o.Set("height", s.height);
    o.Set("rates", RatesObject(env, s.rates));
  } else {
    o.Set("minWidth", s.minWidth);
    o.Set("maxWidth", s.maxWidth);
    o.Set("stepWidth", s.stepWidth);
    o.Set("minHeight", s.minHeight);
    o.Set("maxHeight", s.maxHeight);
    o.Set("stepHeight", s.stepHeight);
  }
  return o;
}

Napi::Object FormatObject(Napi::Env env, const Format& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fourcc", f.fourcc);
  o.Set("description", f.description);
  o.Set("compressed", f.compressed);
  Napi::Array sizes = Napi::Array::New(env, f.sizes.size());
  for (size_t i = 0; i < f.sizes.size(); i++) sizes.Set(static_cast<uint32_t>(i), SizeObject(env, f.sizes[i]));
  o.Set("sizes", sizes);
  return o;
}

Napi::Object DeviceObject(Napi::Env env, const Device& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", "/dev/video" + std::to_string(d.index));
  o.Set("index", d.index);
  if (!d.error.empty()) {
    o.Set("error", d.error);
    return o;
  }
  o.Set("error", env.Null());
  o.Set("kind", d.kind);
  o.Set("card", d.card);
  o.Set("driver", d.driver);
  o.Set("bus", d.bus);
  o.Set("inUse", d.inUse);
  Napi::Array formats = Napi::Array::New(env, d.formats.size());
  for (size_t i = 0; i < d.formats.size(); i++) formats.Set(static_cast<uint32_t>(i), FormatObject(env, d.formats[i]));
  o.Set("formats", formats);
  return o;
}

// listCameras(): {devices, lastIndex}. Synchronous: a few dozen ioctls on nodes opened
// without blocking, for a listing the program prints and exits after.
Napi::Value ListCameras(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Device> devices = Guard(env, "listCameras", ListDevices);
  Napi::Array list = Napi::Array::New(env, devices.size());
  for (size_t i = 0; i < devices.size(); i++) list.Set(static_cast<uint32_t>(i), DeviceObject(env, devices[i]));
  Napi::Object out = Napi::Object::New(env);
  out.Set("devices", list);
  out.Set("lastIndex", kMaxDevices - 1);
  return out;
}

}  // namespace

void InitDevices(Napi::Env env, Napi::Object exports) {
  exports.Set("listCameras", Napi::Function::New<ListCameras>(env, "listCameras"));
}

}  // namespace lancam
