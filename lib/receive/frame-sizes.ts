import { WELCOME_PATH_REPORTS, type Delivery, type Welcome } from "../wire/control.ts";

/** A picture size. */
export interface PictureSize {
  width: number;
  height: number;
}

/** Sizes remembered per session at most: a server names one per layer, and there are few layers. */
const MAX_ANNOUNCED = 8;

/**
 * The picture sizes a session's frames may have. Always the welcome's. In a session
 * whose welcome set WELCOME_PATH_REPORTS (the server may send smaller layers) also
 * every size a delivery message announced, and any smaller size with the welcome's
 * aspect ratio: a frame of a new layer may come by UDP before the delivery message
 * that announces it comes by TCP, and the automatic layers (half, quarter) keep the
 * ratio. A layer of another ratio (`--layers` sizes) is accepted once announced.
 * Anything else is rejected, so a forged header cannot make the viewer decode a
 * picture larger than the server announced. The layer groups a welcome lists
 * (WELCOME_MULTICAST_LAYERS) are announced with it.
 */
export class FrameSizes {
  readonly #full: PictureSize;
  readonly #layered: boolean;
  readonly #announced: PictureSize[] = [];

  constructor(welcome: Pick<Welcome, "width" | "height" | "flags" | "layerGroups">) {
    this.#full = { width: welcome.width, height: welcome.height };
    this.#layered = (welcome.flags & WELCOME_PATH_REPORTS) !== 0;
    // A viewer that picks its own layer's group takes that layer's size, announced in the welcome.
    for (const g of welcome.layerGroups ?? []) this.announce(g);
  }

  /** A delivery message's layer (checked with deliveryProblem): its size is accepted from now on. */
  announce(d: Pick<Delivery, "width" | "height">): void {
    if (this.#announced.some((s) => s.width === d.width && s.height === d.height)) return;
    if (this.#announced.length >= MAX_ANNOUNCED) this.#announced.shift();
    this.#announced.push({ width: d.width, height: d.height });
  }

  /** Whether a frame of this size may be shown and recorded. */
  accepts(width: number, height: number): boolean {
    const full = this.#full;
    if (width === full.width && height === full.height) return true;
    if (this.#announced.some((s) => s.width === width && s.height === height)) return true;
    if (!this.#layered) return false;
    return sameAspect(full, width, height);
  }
}

/** Why a delivery message cannot be believed in this session (a protocol error), or null when it can. */
export function deliveryProblem(welcome: Pick<Welcome, "width" | "height" | "flags">, d: Pick<Delivery, "layer" | "width" | "height">): string | null {
  if ((welcome.flags & WELCOME_PATH_REPORTS) === 0) return "delivery message in a session whose welcome did not announce path reports";
  const full = `${welcome.width}x${welcome.height}`;
  if (d.width > welcome.width || d.height > welcome.height) return `delivery layer ${d.layer} of ${d.width}x${d.height} is larger than the stream's ${full}`;
  if (d.layer === 0 && (d.width !== welcome.width || d.height !== welcome.height)) return `delivery layer 0 of ${d.width}x${d.height} is not the stream's ${full}`;
  return null;
}

/**
 * A smaller picture with even sides of at least 16 whose ratio is the full one's within
 * the rounding of each side down to an even number (under 2 pixels a side).
 */
function sameAspect(full: PictureSize, width: number, height: number): boolean {
  if (width < 16 || height < 16 || width % 2 || height % 2) return false;
  if (width > full.width || height > full.height) return false;
  // |w/W - h/H| < 2/min(W,H), in integers: |w*H - h*W| < 2*max(W, H).
  return Math.abs(width * full.height - height * full.width) < 2 * Math.max(full.width, full.height);
}
