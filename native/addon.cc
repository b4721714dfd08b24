// Entry point of the lancam addon: registers each concern and the picture limits, nothing else.
#include "lancam.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lancam::InitCapture(env, exports);
  lancam::InitDevices(env, exports);
  lancam::InitCodec(env, exports);
  lancam::InitWindow(env, exports);
  lancam::InitTestPattern(env, exports);
  lancam::InitOverlay(env, exports);
  lancam::InitWindowView(env, exports);
  lancam::InitOpus(env, exports);
  exports.Set("opencvVersion", Napi::String::New(env, CV_VERSION));
  Napi::Object maxPicture = Napi::Object::New(env);
  maxPicture.Set("width", lancam::kMaxPictureWidth);
  maxPicture.Set("height", lancam::kMaxPictureHeight);
  exports.Set("maxPicture", maxPicture);
  exports.Set("minPictureSide", lancam::kMinPictureSide);
  return exports;
}

}  // namespace

NODE_API_MODULE(lancam, Init)
