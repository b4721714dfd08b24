// Entry point of the lancam addon: registers each concern, nothing else.
#include "lancam.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lancam::InitCapture(env, exports);
  lancam::InitCodec(env, exports);
  lancam::InitWindow(env, exports);
  lancam::InitTestPattern(env, exports);
  exports.Set("opencvVersion", Napi::String::New(env, CV_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(lancam, Init)
