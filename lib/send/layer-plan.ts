import { MAX_DELIVERY_LAYERS, MIN_LAYER_SIDE } from "../wire/control.ts";
import { LayersError, layerSizes, type LayersFlag, type Size } from "./layer-ladder.ts";
import { StartError } from "./start-error.ts";

/**
 * The sizes a server sends frames in, the source's first: the `--layers` ladder, cut to
 * what a delivery message can name. A StartError when the ladder asked for cannot be.
 */
export function layerPlan(layers: LayersFlag, source: Size, encrypted: boolean): Size[] {
  // Frames are sealed once per frame number: a second, smaller copy under the same
  // number would reuse its nonces, so an encrypted stream has the source size only.
  if (encrypted) return [{ width: source.width, height: source.height }];
  let sizes: Size[];
  try {
    sizes = layerSizes(layers, source);
  } catch (e) {
    if (e instanceof LayersError) throw new StartError(e.message);
    throw e;
  }
  // What a delivery message can name: a very wide source's quarter may be too flat, and
  // sizes given besides the source's may be one too many.
  const flat = sizes.find((l) => l.height < MIN_LAYER_SIDE);
  if (flat && layers.kind === "sizes") throw new StartError(`--layers size ${flat.width}x${flat.height} is lower than ${MIN_LAYER_SIDE}`);
  sizes = sizes.filter((l) => l.height >= MIN_LAYER_SIDE);
  if (sizes.length > MAX_DELIVERY_LAYERS) {
    throw new StartError(`--layers gives ${sizes.length - 1} sizes besides the source's ${source.width}x${source.height}; at most ${MAX_DELIVERY_LAYERS - 1}`);
  }
  return sizes;
}
