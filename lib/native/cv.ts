/**
 * The one loader of the native OpenCV addon (native/build/lancam.node) and its
 * typed surface. Loading is lazy so `--help` and pure-TypeScript paths never need
 * OpenCV; a load failure becomes one CvLoadError that names the fix.
 */
import { tmpdir } from "node:os";
import { UserError } from "../errors/user-error.ts";
import { errorText } from "../errors/error-text.ts";

/** The addon could not be loaded; the message says what is missing and how to fix it. */
export class CvLoadError extends UserError {
  override name = "CvLoadError";
}

/**
 * The largest picture lancam takes from a source, sends or decodes: the one TypeScript
 * statement of this limit. The addon holds its own (native/lancam.h kMaxPictureWidth x
 * kMaxPictureHeight, exported as `maxPicture`); tests/cv.test.ts checks the two agree.
 */
export const MAX_PICTURE = { width: 7680, height: 4320 } as const;

/** The smallest side of a picture lancam makes (`--size`); the addon's `minPictureSide`. */
export const MIN_PICTURE_SIDE = 16;

/** A JPEG picture with its size. */
export interface JpegImage {
  jpeg: Buffer;
  width: number;
  height: number;
}

/** One frame read from a native capture. */
export interface CaptureRead extends JpegImage {
  /** Microseconds between the frame's arrival in C++ and the promise resolving. */
  ageMicros: number;
}

/** One raw YUV frame encoded by TurboJPEG, or why it could not be (wrong size for its layout). */
export type YuvRead = CaptureRead | { jpeg: null; reason: string; ageMicros: number };

/** How a raw YUV frame's bytes are laid out: planar 4:2:0, or packed 4:2:2 (Y0 U Y1 V). */
export type YuvLayout = "i420" | "yuyv";

/** What a source delivered, undecoded (for MJPEG: the JPEG file itself). */
export interface PacketRead {
  packet: Buffer;
  /** Microseconds between the packet's arrival in C++ and the promise resolving. */
  ageMicros: number;
}

/** A decoded picture: packed BGR, 3 bytes per pixel, rows without padding. */
export interface BgrImage {
  bgr: Buffer;
  width: number;
  height: number;
}

/** What fitJpeg made: the fitted picture (`quality` 0 when the input already fitted), or why there is none. */
export type FitJpegResult =
  | { jpeg: Buffer; width: number; height: number; quality: number }
  | { jpeg: null; reason: string };

/** The corner the overlay box sits in. */
export type OverlayPosition = "top-left" | "top-right" | "bottom-left" | "bottom-right";

/**
 * A line of text to draw on a translucent box, scaled to the picture's height: the
 * finished text (no codes left; bytes outside printable ASCII are drawn as "?").
 */
export interface OverlaySpec {
  text: string;
  position: OverlayPosition;
}

/** What encodeHeld made: the JPEG, or (raw YUV of the wrong size only) why there is none. */
export type HeldJpeg = JpegImage | { jpeg: null; reason: string };

/** Numeric capture properties (cv::CAP_PROP_*). */
export type CaptureProperty = "width" | "height" | "fps" | "fourcc" | "posFrames" | "frameCount" | "bufferSize";

/** Seconds per frame, as V4L2 gives it (30 fps is 1/30). */
export interface FrameInterval {
  numerator: number;
  denominator: number;
}

/** The frame rates a camera offers at one size: a list, a range, or nothing said ("unknown"). */
export type FrameRates =
  | { kind: "discrete"; intervals: FrameInterval[] }
  | { kind: "stepwise" | "continuous"; min: FrameInterval; max: FrameInterval; step: FrameInterval }
  | { kind: "unknown" };

/** One size a format comes in, or (stepwise, continuous) the range of sizes it takes. */
export type FrameSize =
  | { kind: "discrete"; width: number; height: number; rates: FrameRates }
  | { kind: "stepwise" | "continuous"; minWidth: number; maxWidth: number; stepWidth: number; minHeight: number; maxHeight: number; stepHeight: number };

/** A pixel format a camera delivers, with every size (at most 64) and rate (at most 32 a size) it lists. */
export interface CameraFormat {
  /** "MJPG", "YUYV"; "-BE" appended for a big-endian variant. */
  fourcc: string;
  /** The driver's name for it: "Motion-JPEG". */
  description: string;
  compressed: boolean;
  sizes: FrameSize[];
}

/**
 * What a /dev/video node is: a camera ("capture"), a camera only multi-planar buffers
 * reach ("multiplanar"), a camera's metadata node ("metadata"), a memory-to-memory codec
 * or scaler ("codec"), a video output ("output"), or something else.
 */
export type CameraKind = "capture" | "multiplanar" | "metadata" | "codec" | "output" | "other";

/**
 * One /dev/videoN: what its driver says, or why it could not be opened or asked: an errno's
 * name where the fix depends on it ("EBUSY", "EACCES", "ENOTTY"), else the C library's text.
 */
export type CameraDevice =
  | { path: string; index: number; error: string }
  | {
      path: string;
      index: number;
      error: null;
      kind: CameraKind;
      /** The device's name ("HD Webcam"), its driver ("uvcvideo") and where it sits ("usb-0000:00:14.0-1"). */
      card: string;
      driver: string;
      bus: string;
      /** Another program holds its buffers (streams from it) now. */
      inUse: boolean;
      /** Capture devices' formats (at most 64); none for other kinds. */
      formats: CameraFormat[];
    };

/** Every /dev/video0../dev/video<lastIndex> that exists, in order. */
export interface CameraList {
  devices: CameraDevice[];
  lastIndex: number;
}

/** A cv::VideoCapture. One operation at a time: a second concurrent open/read rejects. */
export interface NativeCapture {
  /**
   * Opens a camera index, a file path (api "ffmpeg": FFmpeg only, when built in) or
   * (api "gstreamer") a pipeline; false when OpenCV cannot.
   */
  open(source: number | string, api?: "any" | "ffmpeg" | "gstreamer"): Promise<boolean>;
  /** Reads and JPEG-encodes the next frame on a worker thread; null at end of stream. */
  readJpeg(quality: number): Promise<CaptureRead | null>;
  /**
   * After setRawPackets: reads the next raw YUV frame and encodes it with TurboJPEG
   * straight from its planes (4:2:0 JPEG), stretching limited-range video levels to
   * JPEG's full range unless `limitedRange` is false. `jpeg` is null, with the reason,
   * when the frame's size does not match the layout at width x height. Null at end of stream.
   */
  readYuvJpeg(layout: YuvLayout, width: number, height: number, quality: number, limitedRange?: boolean): Promise<YuvRead | null>;
  /** After setRawPackets: the next packet as the source delivered it; null at end of stream. */
  readPacket(): Promise<PacketRead | null>;
  /**
   * Reads the next frame (decoded to BGR, or after setRawPackets raw) and keeps it for
   * encodeHeld, so the overlay's text can carry the capture time; null at end of stream.
   */
  readHeld(): Promise<{ width: number; height: number; ageMicros: number } | null>;
  /**
   * Encodes the frame readHeld kept, with `overlay` drawn: BGR through OpenCV, or with
   * `yuv` raw YUV through TurboJPEG (as readYuvJpeg, the reason when it does not fit).
   * Rejects when no frame is held.
   */
  encodeHeld(quality: number, overlay: OverlaySpec, yuv?: { layout: YuvLayout; width: number; height: number; limitedRange?: boolean }): Promise<HeldJpeg>;
  /** Takes the next frame from the source without decoding or converting it; false at end of stream. */
  grab(): Promise<boolean>;
  /**
   * Makes reads return undecoded packets (FFmpeg backend: CAP_PROP_FORMAT -1; V4L2:
   * CAP_PROP_CONVERT_RGB off). Before the first read; false where the backend cannot.
   */
  setRawPackets(): boolean;
  /** Sets a property; false when the backend refuses. Throws while a read runs. */
  set(prop: CaptureProperty, value: number): boolean;
  /** Reads a property (0 when the backend does not know it). */
  get(prop: CaptureProperty): number;
  /** Requests a pixel format such as "MJPG"; false when refused. */
  setFourcc(code: string): boolean;
  /**
   * The codec's FOURCC ("MJPG", "I420", "YUYV" on a camera), or with "pixelFormat" the
   * pixel format FFmpeg decodes it to ("I420", "YUY2"); "" when unknown.
   */
  getFourcc(which?: "fourcc" | "pixelFormat"): string;
  /** The OpenCV backend in use ("V4L2", "FFMPEG", "GSTREAMER"), "" when closed. */
  backendName(): string;
  /** True after a successful open() until release(). */
  isOpened(): boolean;
  /** Releases the device or file; deferred until a running read completes. */
  release(): void;
}

/** The synthetic frame renderer (keeps its background cached by size). */
export interface NativeTestPattern {
  /** Renders frame `frameNumber` (0..2^32-1) with `text` and the barcode, as JPEG. Rejects while busy. */
  render(width: number, height: number, frameNumber: number, text: string, quality: number, overlay?: OverlaySpec): Promise<Buffer>;
}

/** Barcode geometry as compiled into the addon (lib/test-pattern.ts holds the same numbers). */
export interface NativeTestPatternLayout {
  bandHeight: number;
  cells: number;
  minCellWidth: number;
  minWidth: number;
}

/** Text drawn over the window's picture: a warning at the top (on a red box), information at the bottom; "" for none. */
export interface WindowText {
  top?: string;
  bottom?: string;
}

/** A libopus decoder inside the addon (lib/audio/opus-decoder.ts wraps it); freed by opusDecoderDestroy or when collected. */
export interface NativeOpusDecoder {
  readonly __kind: "NativeOpusDecoder";
}

/** Everything the addon exports. */
export interface CvAddon {
  /** OpenCV's CV_VERSION, e.g. "4.6.0". */
  readonly opencvVersion: string;
  /** The largest picture the addon decodes or renders (MAX_PICTURE on the TypeScript side). */
  readonly maxPicture: { readonly width: number; readonly height: number };
  /** The smallest side of a picture the addon renders (MIN_PICTURE_SIDE). */
  readonly minPictureSide: number;
  readonly Capture: new () => NativeCapture;
  readonly TestPattern: new () => NativeTestPattern;
  readonly testPatternLayout: NativeTestPatternLayout;
  /** Packed BGR (width*height*3 bytes) to JPEG at quality 1..100. */
  encodeJpeg(bgr: Uint8Array, width: number, height: number, quality: number): Buffer;
  /**
   * JPEG to packed BGR; throws a clear Error on bytes that do not decode or whose
   * header claims more than MAX_PICTURE (checked before anything is allocated).
   */
  decodeJpeg(jpeg: Uint8Array): BgrImage;
  /**
   * The size of a JPEG that decodes in full within MAX_PICTURE, without copying its
   * pixels out; null otherwise.
   */
  jpegInfo(jpeg: Uint8Array): { width: number; height: number } | null;
  /**
   * A JPEG of at most `maxBytes` bytes showing the same picture, made on a worker
   * thread: the input as it is when it already fits, else decoded, shrunk (INTER_AREA)
   * and re-encoded at `quality`, lowering the quality only at the smallest size.
   * Never rejects for bad input: `jpeg` is null and `reason` says why.
   */
  fitJpeg(jpeg: Uint8Array, maxBytes: number, quality: number): Promise<FitJpegResult>;
  /**
   * Decodes a JPEG as far as it decodes (within MAX_PICTURE) and encodes it again at
   * `quality`, on a worker thread, so a damaged frame leaves whole. Never rejects for
   * bad input: `jpeg` is null and `reason` says why.
   */
  reencodeJpeg(jpeg: Uint8Array, quality: number): Promise<JpegImage | { jpeg: null; reason: string }>;
  /**
   * A greyscale picture decoded at 1/`denominator` of the JPEG's size (1, 2, 4 or 8),
   * scaled inside the decoder, so it costs a fraction of a full decode; null when the
   * bytes do not decode or exceed MAX_PICTURE.
   */
  jpegThumbnail(jpeg: Uint8Array, denominator: 1 | 2 | 4 | 8): { grey: Buffer; width: number; height: number } | null;
  /**
   * Smaller copies of a JPEG (1 to 4 sizes, each within the picture), decoded once and
   * resized (INTER_AREA) and encoded at `quality` on a worker thread. Never rejects for
   * bad input: `jpegs` is null and `reason` says why.
   */
  scaleJpeg(jpeg: Uint8Array, sizes: readonly { width: number; height: number }[], quality: number): Promise<{ jpegs: Buffer[] } | { jpegs: null; reason: string }>;
  /**
   * Draws `overlay` into the caller's picture in place, during the call: packed BGR, or
   * I420 planes (full range). Throws a RangeError when the bytes do not fit the size.
   */
  drawOverlay(pixels: Uint8Array, width: number, height: number, layout: "bgr" | "i420", overlay: OverlaySpec): void;
  /**
   * A JPEG decoded (within MAX_PICTURE), with `overlay` drawn, encoded at `quality` on a
   * worker thread. Never rejects for bad input: `jpeg` is null and `reason` says why.
   */
  overlayJpeg(jpeg: Uint8Array, overlay: OverlaySpec, quality: number): Promise<HeldJpeg>;
  /**
   * Why a V4L2 device under /dev/ cannot be used, as an errno name ("ENOENT", "EACCES",
   * "EBUSY": another program streams from it), or "" when it opens and is free.
   */
  probeDevice(path: string): string;
  /**
   * Each /dev/videoN there is (N up to `lastIndex`) with its driver's description and,
   * for a camera, its formats, sizes and frame rates. Never throws for a device: one that
   * cannot be opened is listed with the errno's name. None on systems without V4L2.
   */
  listCameras(): CameraList;
  /** True when an X display opens (checked with Xlib, never through Qt, which would abort). */
  displayAvailable(): boolean;
  /** Creates a window now; throws when there is no display. */
  openWindow(name: string): void;
  /**
   * Decodes on a worker thread for showDecoded (one at a time), scaled there to
   * `width` x `height` when given (MIN_PICTURE_SIDE..MAX_PICTURE, else a RangeError);
   * false when the bytes do not decode or exceed the limit.
   */
  decodeForWindow(jpeg: Uint8Array, width?: number, height?: number): Promise<boolean>;
  /**
   * Draws what decodeForWindow last produced, with `text` on it (non-ASCII shown as '?',
   * lines cut at 160 characters), and keeps the picture for redrawWindow; false when
   * nothing has been decoded yet.
   */
  showDecoded(name: string, text?: WindowText): boolean;
  /** Draws the last shown picture again with `text`; false before the first. */
  redrawWindow(name: string, text?: WindowText): boolean;
  /**
   * Full screen on or off, the picture's aspect kept (black bars); without a window
   * manager the window is moved and sized to the screen itself, after one turn of the
   * GUI event loop. Returns the screen's size and the key that turn read (-1 for none).
   */
  setWindowFullScreen(name: string, on: boolean): { width: number; height: number; key: number };
  /** Runs the GUI event loop for `ms` (at least 1); the key pressed, or -1. */
  pollKey(ms: number): number;
  /** False once the user has closed the window. */
  windowVisible(name: string): boolean;
  /** The size of the window's picture area. */
  windowImageSize(name: string): { width: number; height: number };
  closeWindow(name: string): void;
  /** libopus's version, e.g. "libopus 1.3.1". */
  readonly opusVersion: string;
  /** A 48 kHz Opus decoder for 1 or 2 channels, or a negative libopus error code. */
  opusDecoderCreate(channels: number): NativeOpusDecoder | number;
  /**
   * One packet decoded to interleaved signed 16-bit samples (native byte order): at
   * most `frameSamples` per channel (1..5760). With `packet` null, `frameSamples` of
   * packet loss concealment (a multiple of 120). A negative libopus error code instead
   * when the packet does not decode or the decoder was destroyed; never throws for data.
   */
  opusDecode(decoder: NativeOpusDecoder, packet: Uint8Array | null, frameSamples: number): Buffer | number;
  /** Frees the decoder now; later decodes return an error code. Safe to call twice. */
  opusDecoderDestroy(decoder: NativeOpusDecoder): void;
  /** libopus's words for a (negative) error code. */
  opusErrorText(code: number): string;
}

const BUILD_FIX = "run `bash native/build.sh` (needs libopencv-dev: sudo apt-get install libopencv-dev)";

let loaded: CvAddon | undefined;
let failure: CvLoadError | undefined;

/** The addon, loaded on first use and cached; throws CvLoadError when it cannot load. */
export function cv(): CvAddon {
  if (loaded) return loaded;
  if (failure) throw failure;
  try {
    // A literal path, so `bun build --compile` embeds the addon.
    loaded = require("../../native/build/lancam.node") as CvAddon;
    return loaded;
  } catch (err) {
    failure = new CvLoadError(describeLoadFailure(err));
    throw failure;
  }
}

/** Where the addon failed to load: the fix differs per platform, and inside a compiled executable. */
export interface LoadContext {
  platform?: NodeJS.Platform;
  /** True inside a `bun build --compile` executable, where there is no addon to rebuild. */
  standalone?: boolean;
}

// The OpenCV modules native/build.sh links the addon against, as a bash brace list.
const ADDON_MODULES = "{core,imgproc,imgcodecs,videoio,highgui}";

/** Turns a require() failure of the addon into a one-line message naming the fix (exported for tests). */
export function describeLoadFailure(err: unknown, where: LoadContext = {}): string {
  const platform = where.platform ?? process.platform;
  const standalone = where.standalone ?? Bun.isStandaloneExecutable;
  const message = errorText(err).replace(/\s+/g, " ").trim();
  const code = (err as { code?: unknown } | null)?.code;
  // A compiled executable unpacks the addon into the temporary folder and loads it from
  // there; when it cannot write it, dlopen is handed the /$bunfs/ path instead.
  if (/\/\$bunfs\/\S*\.node\b/.test(message)) {
    return `cannot unpack the OpenCV addon into the temporary folder ${tmpdir()}: make it writable, or set TMPDIR to a folder that is (${message})`;
  }
  if (standalone && /failed to map segment from shared object/.test(message)) {
    return `the temporary folder ${tmpdir()} does not allow loading code (mounted noexec?): set TMPDIR to another folder (${message})`;
  }
  // Before "not built": a missing dependency's message may name lancam.node and "No such file" too.
  const soMissing = /([\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file/.exec(message)?.[1];
  // The addon's one library besides OpenCV: the TurboJPEG API, for raw YUV sources.
  if (soMissing?.startsWith("libturbojpeg.so")) {
    return `${soMissing}, the TurboJPEG library, is missing: sudo apt-get install libturbojpeg0 (${message})`;
  }
  // And libopus, for the viewer's audio.
  if (soMissing?.startsWith("libopus.so")) {
    return `${soMissing}, the Opus audio library, is missing: sudo apt-get install libopus0 (${message})`;
  }
  if (soMissing) {
    const opencv = /^libopencv_(\w+)\.so\.([\w.]+)$/.exec(soMissing);
    if (!opencv) return `${soMissing}, needed by OpenCV, is missing: sudo apt-get install --reinstall libopencv-dev (${message})`;
    // Debian names each runtime package after the module and the soname version:
    // libopencv_videoio.so.406 ships in libopencv-videoio406.
    const so = opencv[2]!;
    const pkg = `libopencv-${opencv[1]!.replace(/_/g, "-")}${so}`;
    const version = /^\d{3}$/.test(so) ? `${so[0]}.${Number(so.slice(1))}` : so.replace(/[^\d.]+$/, "");
    return (
      `OpenCV library ${soMissing} is missing: sudo apt-get install ${pkg} (or libopencv-dev); ` +
      `all that lancam needs: sudo apt-get install libopencv-${ADDON_MODULES}${so}; ${mismatchHint(standalone, `OpenCV ${version}`)}`
    );
  }
  const dylibMissing = /Library not loaded: \S*?([^/\s]+\.dylib)/.exec(message)?.[1];
  if (dylibMissing) {
    const what = dylibMissing.startsWith("libopencv_") ? `OpenCV library ${dylibMissing}` : `${dylibMissing}, needed by OpenCV,`;
    return `${what} is missing: brew install opencv; ${mismatchHint(standalone)}`;
  }
  if (platform === "win32" && code !== "MODULE_NOT_FOUND" && /specified module could not be found/i.test(message)) {
    return (
      "the OpenCV DLLs are not on PATH: add the bin folder of the OpenCV release the addon was built with " +
      `(e.g. C:\\opencv\\build\\x64\\vc16\\bin, which holds opencv_world4xx.dll) to PATH; ${mismatchHint(standalone)}`
    );
  }
  if (code === "MODULE_NOT_FOUND" || /Cannot find module|lancam\.node.*No such file/.test(message)) {
    return `the OpenCV addon native/build/lancam.node is not built: ${BUILD_FIX}`;
  }
  if (/undefined symbol|Symbol not found/.test(message)) {
    return standalone
      ? `the installed OpenCV is not the one this executable was built with (${message}): build lancam on this machine (bun run build)`
      : `the OpenCV addon does not match the installed OpenCV (${message}): rebuild it with bash native/build.sh`;
  }
  return standalone
    ? `cannot load the OpenCV addon embedded in this executable (${message}): install OpenCV's runtime libraries (libopencv-dev, brew install opencv, or the OpenCV DLLs on PATH)`
    : `cannot load the OpenCV addon native/build/lancam.node (${message}): ${BUILD_FIX}`;
}

/** What to do when the installed OpenCV is another version than the addon was linked with. */
function mismatchHint(standalone: boolean, builtFor = "the OpenCV version it was built with"): string {
  return standalone
    ? `this executable needs ${builtFor}: where another version is installed, build lancam on that machine (bun run build)`
    : "if a different OpenCV version is installed, rebuild the addon: bash native/build.sh";
}

let sharedRenderer: NativeTestPattern | undefined;
let renderQueue: Promise<unknown> = Promise.resolve();

/**
 * Renders one test-pattern frame as JPEG on a worker thread, using one shared
 * renderer; concurrent calls run one after another.
 */
export function renderTestFrame(width: number, height: number, frameNumber: number, text: string, quality: number): Promise<Buffer> {
  const renderer = (sharedRenderer ??= new (cv().TestPattern)());
  const result = renderQueue.then(() => renderer.render(width, height, frameNumber, text, quality));
  renderQueue = result.catch(() => undefined);
  return result;
}
