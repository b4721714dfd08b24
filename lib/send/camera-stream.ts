import type { AudioFormat } from "../wire/audio-packet.ts";
import type { LayerGroup } from "../wire/control.ts";
import type { FrameFanout } from "./frame-fanout.ts";
import type { FrameSealer } from "./frame-sealer.ts";
import type { FrameSigner } from "./frame-signer.ts";
import type { LayerEncoder } from "./layer-encoder.ts";
import type { RepairServer } from "./repair-server.ts";

/** One of the server's cameras as its options give it. */
export interface CameraOptions {
  /** Its name, or its number as text when it has none (lib/wire/camera-name.ts). */
  name: string;
  width: number;
  height: number;
  fps: number;
  /** JPEG quality of its smaller layers (default: the server's layerQuality). */
  layerQuality?: number;
  /** Its microphone's format; null or left out: no audio. */
  audio?: AudioFormat | null;
}

/**
 * What the server keeps for each camera: its own viewers' fan-out, its own stream key
 * and signing key (a viewer of one camera cannot read or forge another's frames), its
 * own frame numbers' repair ring, its layers and its multicast group. The TCP listener,
 * the UDP socket, admission and the --max-clients places are the server's, shared.
 */
export class CameraStream {
  /** A viewer of this camera left: a new stream key before its next frame. */
  rekey = false;
  /** The camera delivers (false while it failed and is being retried). */
  available = true;
  /** Frames broadcast from this camera. */
  framesBroadcast = 0;
  /** Its microphone delivers (false while it failed and is being retried). */
  audioAvailable = true;
  /** The next audio packet's number: counted here, never reset, as it is part of the cipher's nonce. */
  audioSeq = 0;
  /** Sessions of this camera that play audio (their hello offered CAP_AUDIO). */
  readonly audioSessions = new Set<number>();

  constructor(
    readonly index: number,
    readonly options: CameraOptions,
    readonly fanout: FrameFanout,
    readonly signer: FrameSigner,
    readonly sealer: FrameSealer | null,
    readonly repair: RepairServer | null,
    readonly group: { address: string; port: number; streamId: number } | null,
    readonly layerEncoder: LayerEncoder | null,
    /** With a group and smaller layers: each smaller layer's own group (layer 1, 2, ...). */
    readonly layerGroups: readonly LayerGroup[] = [],
  ) {}

  get name(): string {
    return this.options.name;
  }

  get audio(): AudioFormat | null {
    return this.options.audio ?? null;
  }
}
