/** A picture size. */
export interface Size {
  width: number;
  height: number;
}

/** One quality layer: its size and, once it has been encoded, its measured bytes per frame. */
export interface Layer extends Size {
  /** Mean bytes per frame as sent (datagrams, headers included); null until measured. */
  bytesPerFrame: number | null;
}

/** What `--layers` asks for: the automatic ladder, the source only, or sizes given. */
export type LayersFlag = { kind: "auto" } | { kind: "off" } | { kind: "sizes"; sizes: Size[] };

/** A bad `--layers` value, or sizes the source cannot give; the message names both. */
export class LayersError extends Error {
  override name = "LayersError";
}

/** No layer is narrower than this: a smaller picture is not worth watching. */
export const MIN_LAYER_WIDTH = 160;
/** Layers, the source's included, at most. */
export const MAX_LAYERS = 4;
/** JPEG bytes grow more slowly than pixels: bytes scale as (pixel ratio) ** this, for a layer not yet measured. */
export const BYTES_PER_PIXEL_EXPONENT = 0.8;

const EXPECTED = "expected auto, off, or sizes WxH,... with even sides (e.g. 640x360,320x180)";

/** Parses `--layers` (syntax only: the source size is known once the camera is open, see `layerSizes`). */
export function parseLayersFlag(raw: string, flag = "--layers"): LayersFlag {
  if (raw === "auto" || raw === "off") return { kind: raw };
  const parts = raw.split(",");
  if (raw === "" || parts.length > MAX_LAYERS) throw new LayersError(`invalid ${flag}=${raw}: ${EXPECTED}, at most ${MAX_LAYERS}`);
  const sizes: Size[] = [];
  for (const part of parts) {
    const m = /^([1-9]\d{0,4})x([1-9]\d{0,4})$/.exec(part);
    if (!m) throw new LayersError(`invalid ${flag}=${raw}: "${part}" is not WxH; ${EXPECTED}`);
    const size = { width: Number(m[1]), height: Number(m[2]) };
    if (size.width % 2 || size.height % 2) throw new LayersError(`invalid ${flag}=${raw}: ${part} has an odd side; ${EXPECTED}`);
    if (size.width < MIN_LAYER_WIDTH) throw new LayersError(`invalid ${flag}=${raw}: ${part} is narrower than ${MIN_LAYER_WIDTH}`);
    if (size.width > 0xffff || size.height > 0xffff) throw new LayersError(`invalid ${flag}=${raw}: ${part} is larger than 65535`);
    sizes.push(size);
  }
  return { kind: "sizes", sizes };
}

/** Even and at least 2: JPEG chroma subsampling wants even sides. */
const even = (v: number) => Math.max(2, Math.floor(v / 2) * 2);

/**
 * The layers for a source, largest first; the source itself is always the first (the
 * full layer). auto: source, half, quarter, each side even, none narrower than
 * MIN_LAYER_WIDTH. off: the source only. Given sizes must fit inside the source.
 */
export function layerSizes(flag: LayersFlag, source: Size): Size[] {
  const out: Size[] = [{ width: source.width, height: source.height }];
  const add = (s: Size) => {
    if (!out.some((o) => o.width === s.width && o.height === s.height)) out.push(s);
  };
  if (flag.kind === "auto") {
    for (const div of [2, 4]) {
      const s = { width: even(source.width / div), height: even(source.height / div) };
      if (s.width >= MIN_LAYER_WIDTH) add(s);
    }
  } else if (flag.kind === "sizes") {
    for (const s of flag.sizes) {
      if (s.width > source.width || s.height > source.height) {
        throw new LayersError(`--layers size ${s.width}x${s.height} is larger than the source's ${source.width}x${source.height}`);
      }
      add(s);
    }
  }
  return out.sort((a, b) => b.width * b.height - a.width * a.height);
}

/** A layer's rate in bytes per second: measured, or guessed from the nearest measured larger layer. */
export function layerRate(layers: readonly Layer[], index: number, fps: number): number {
  const l = layers[index]!;
  if (l.bytesPerFrame !== null) return l.bytesPerFrame * fps;
  for (let i = index - 1; i >= 0; i--) {
    const m = layers[i]!;
    if (m.bytesPerFrame === null) continue;
    const ratio = (l.width * l.height) / (m.width * m.height);
    return m.bytesPerFrame * ratio ** BYTES_PER_PIXEL_EXPONENT * fps;
  }
  // Nothing measured yet: no rate is known, so no estimate can rule this layer out.
  return 0;
}

/** How a viewer moves between layers. */
export interface LadderOptions {
  /** Frames per second of the stream (a layer's rate is its bytes per frame × this). */
  fps: number;
  /** Going up needs the estimate above the next layer's rate × this. */
  upMargin?: number;
  /** Staying needs the estimate above the current layer's rate × this; below it, down at once. */
  downMargin?: number;
  /** How long the estimate must clear the next layer before going up, ms. */
  holdMs?: number;
  /** The hold doubles after a step up that had to be undone within this time, ms, up to maxHoldMs. */
  flapWindowMs?: number;
  maxHoldMs?: number;
}

/** Going up needs this much room above the next layer (the estimate also has to carry a burst). */
export const UP_MARGIN = 1.25;
/** A layer is kept while the estimate carries at least this fraction of it (whole frames: a few fps fewer). */
export const DOWN_MARGIN = 0.9;
/** The estimate must clear the next layer for this long before a viewer is moved up. */
export const HOLD_MS = 3_000;
/** A step up undone within this long was a flap: the next hold is twice as long. */
export const FLAP_WINDOW_MS = 10_000;
/** The longest hold after repeated flaps. */
export const MAX_HOLD_MS = 30_000;

/** One viewer's place on the ladder. */
export interface LadderState {
  /** Index into the layers, 0 = the full layer. */
  layer: number;
  /** Since when the estimate has cleared the next layer up; null while it does not. */
  upSince: number | null;
  /** The hold the next step up needs, ms. */
  holdMs: number;
  /** When the viewer last went up (to spot a flap), or null. */
  upAt: number | null;
  /** When a step up was last undone within the flap window, or null. */
  flapAt: number | null;
}

/** Where a new viewer starts: the full layer (a free link must see no change), with the base hold. */
export function ladderStart(opts: LadderOptions): LadderState {
  return { layer: 0, upSince: null, holdMs: opts.holdMs ?? HOLD_MS, upAt: null, flapAt: null };
}

/**
 * Chooses a viewer's layer from its rate estimate: down at once (to the largest layer
 * the estimate carries, several steps if need be) when the estimate falls below the
 * current layer by the down margin; up one step only after the estimate has cleared
 * the next layer's rate by the up margin for the hold time. The gap between the
 * margins, the hold, and a hold that doubles after each flap (back to the base once a
 * step up has held for the flap window) keep a viewer on a path near a layer's rate
 * from switching back and forth. Pure: returns the new state. An estimate that has met
 * no limit (at its ceiling, the full layer's rate) is passed as Infinity: the full
 * layer's margin could never be cleared otherwise.
 */
export function chooseLayer(layers: readonly Layer[], estimateBytesPerS: number, s: LadderState, nowMs: number, opts: LadderOptions): LadderState {
  const up = opts.upMargin ?? UP_MARGIN;
  const down = opts.downMargin ?? DOWN_MARGIN;
  const baseHold = opts.holdMs ?? HOLD_MS;
  const flapWindow = opts.flapWindowMs ?? FLAP_WINDOW_MS;
  const maxHold = opts.maxHoldMs ?? MAX_HOLD_MS;
  const last = layers.length - 1;
  if (last < 0) throw new RangeError("chooseLayer: no layers");
  const current = Math.min(Math.max(0, s.layer), last);
  const rate = (i: number) => layerRate(layers, i, opts.fps);
  // A step up that held for the flap window shows the path has changed: old flaps are forgiven.
  if (s.upAt !== null && nowMs - s.upAt >= flapWindow && s.flapAt !== null) s = { ...s, holdMs: baseHold, flapAt: null };

  if (current < last && estimateBytesPerS < rate(current) * down) {
    let to = current + 1;
    while (to < last && estimateBytesPerS < rate(to) * down) to++;
    const flapped = s.upAt !== null && nowMs - s.upAt < flapWindow;
    if (!flapped) return { ...s, layer: to, upSince: null, upAt: null };
    return { layer: to, upSince: null, upAt: null, holdMs: Math.min(maxHold, s.holdMs * 2), flapAt: nowMs };
  }
  if (current === 0 || estimateBytesPerS < rate(current - 1) * up) {
    // A long stretch without a flap forgives the old ones.
    const calm = s.flapAt !== null && nowMs - s.flapAt >= 2 * maxHold;
    return calm ? { ...s, layer: current, upSince: null, holdMs: baseHold, flapAt: null } : { ...s, layer: current, upSince: null };
  }
  const since = s.upSince ?? nowMs;
  if (nowMs - since < s.holdMs) return { ...s, layer: current, upSince: since };
  return { ...s, layer: current - 1, upSince: null, upAt: nowMs };
}
