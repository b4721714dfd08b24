// Opus decoding for the viewer's audio (libopus): one decoder per stream, packets in,
// 16-bit PCM out. A lost packet is decoded as NULL data, which is libopus's packet
// loss concealment. Failures come back as libopus's (negative) error codes, never as
// exceptions; only a caller passing the wrong types gets a TypeError.
#include <opus.h>

#include <string>
#include <vector>

#include "lancam.h"

namespace lancam {
namespace {

// Opus decodes at 48 kHz whatever the encoder's input rate.
constexpr opus_int32 kSampleRate = 48000;
// The longest packet Opus has (RFC 6716 3.2.5: 120 ms), and so the most one call decodes.
constexpr int kMaxFrameSamples = 5760;

// What the handle points at. `decoder` is null once destroyed; the struct itself lives
// until the handle is collected, so a decode after destroy finds null, not freed memory.
struct Decoder {
  OpusDecoder* decoder;
  int channels;
};

void Finalize(Napi::Env, Decoder* d) {
  if (d->decoder != nullptr) opus_decoder_destroy(d->decoder);
  delete d;
}

// Per thread: a fresh buffer per packet would cost page faults 50 times a second.
thread_local std::vector<opus_int16> tlsPcm;

Decoder* HandleArg(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Value v = info[0];
  if (!v.IsExternal()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": handle must come from opusDecoderCreate");
  return v.As<Napi::External<Decoder>>().Data();
}

// opusDecoderCreate(channels: 1 | 2): handle, or a negative libopus error code.
Napi::Value OpusDecoderCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int channels = Int32Arg(info, 0, "opusDecoderCreate", "channels");
  if (channels != 1 && channels != 2) return Napi::Number::New(env, OPUS_BAD_ARG);
  int err = OPUS_OK;
  OpusDecoder* dec = opus_decoder_create(kSampleRate, channels, &err);
  if (dec == nullptr || err != OPUS_OK) {
    if (dec != nullptr) opus_decoder_destroy(dec);
    return Napi::Number::New(env, err != OPUS_OK ? err : OPUS_ALLOC_FAIL);
  }
  auto* d = new Decoder{dec, channels};
  return Napi::External<Decoder>::New(env, d, Finalize);
}

// opusDecode(handle, packet: Uint8Array | null, frameSamples): Buffer of interleaved
// s16 (native byte order) for the samples decoded, or a negative libopus error code.
// With null, frameSamples of concealment (a multiple of 2.5 ms: 120 samples).
Napi::Value OpusDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Decoder* d = HandleArg(info, "opusDecode");
  Napi::Value packetArg = info[1];
  const bool lost = packetArg.IsNull() || packetArg.IsUndefined();
  const unsigned char* data = nullptr;
  size_t size = 0;
  if (!lost) {
    auto packet = Uint8ArrayArg(info, 1, "opusDecode", "packet");
    data = packet.Data();
    size = packet.ByteLength();
  }
  int frameSamples = Int32Arg(info, 2, "opusDecode", "frameSamples");
  if (d->decoder == nullptr) return Napi::Number::New(env, OPUS_INVALID_STATE);
  if (frameSamples < 1 || frameSamples > kMaxFrameSamples) return Napi::Number::New(env, OPUS_BAD_ARG);
  // libopus takes an int length; anything this long is not one Opus packet anyway.
  if (!lost && (size == 0 || size > 0x7fffffff)) return Napi::Number::New(env, OPUS_INVALID_PACKET);
  tlsPcm.resize(static_cast<size_t>(kMaxFrameSamples) * d->channels);
  int n = opus_decode(d->decoder, lost ? nullptr : data, lost ? 0 : static_cast<opus_int32>(size), tlsPcm.data(), frameSamples, 0);
  if (n < 0) return Napi::Number::New(env, n);
  return Napi::Buffer<char>::Copy(env, reinterpret_cast<const char*>(tlsPcm.data()),
                                  static_cast<size_t>(n) * d->channels * sizeof(opus_int16));
}

// opusDecoderDestroy(handle): frees the decoder now (the handle's finalizer would later).
Napi::Value OpusDecoderDestroy(const Napi::CallbackInfo& info) {
  Decoder* d = HandleArg(info, "opusDecoderDestroy");
  if (d->decoder != nullptr) opus_decoder_destroy(d->decoder);
  d->decoder = nullptr;
  return info.Env().Undefined();
}

// opusErrorText(code): libopus's words for an error code.
Napi::Value OpusErrorText(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), opus_strerror(Int32Arg(info, 0, "opusErrorText", "code")));
}

}  // namespace

void InitOpus(Napi::Env env, Napi::Object exports) {
  exports.Set("opusDecoderCreate", Napi::Function::New(env, OpusDecoderCreate, "opusDecoderCreate"));
  exports.Set("opusDecode", Napi::Function::New(env, OpusDecode, "opusDecode"));
  exports.Set("opusDecoderDestroy", Napi::Function::New(env, OpusDecoderDestroy, "opusDecoderDestroy"));
  exports.Set("opusErrorText", Napi::Function::New(env, OpusErrorText, "opusErrorText"));
  exports.Set("opusVersion", Napi::String::New(env, opus_get_version_string()));
}

}  // namespace lancam
