// Shared pieces of the lancam addon: registration hooks and the error guard.
#pragma once

#include <napi.h>

#include <exception>
#include <string>
#include <utility>

#include <opencv2/core.hpp>

namespace lancam {

// One hook per concern; addon.cc only calls these.
void InitCapture(Napi::Env env, Napi::Object exports);
void InitCodec(Napi::Env env, Napi::Object exports);
void InitWindow(Napi::Env env, Napi::Object exports);
void InitTestPattern(Napi::Env env, Napi::Object exports);

// Decodes any image OpenCV reads into packed BGR; an empty Mat when it cannot.
cv::Mat DecodeBgr(const uchar* data, size_t size);

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
