import type { Logger } from "../log/format.ts";
import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { resolveFfmpeg } from "../media/ffmpeg.ts";
import type { Frame } from "../wire/frame.ts";
import { type EncoderStats, H264Encoder } from "./h264-encoder.ts";
import type { PublishTimings } from "./publish-link.ts";
import type { PublishCodec } from "./publish-process.ts";
import { type PublishCredentials, type PublishTarget, parsePublishUrl, PublishUrlError, withCredentials } from "./publish-url.ts";
import { Publisher, type PublisherStats } from "./publisher.ts";

/** Options of {@link Publishers}: the server's `--publish*` flags, parsed. */
export interface PublishersOptions {
  /** Every `--publish` URL, parsed with parsePublishUrl (credentials applied). */
  targets: readonly PublishTarget[];
  /** `--publish-codec` */
  codec: PublishCodec;
  /** Nominal frame rate of the source. */
  fps: number;
  /** Pass e.g. `log.child("publish")`. */
  log: Logger;
  ffmpegPath?: string;
  timings?: Partial<PublishTimings>;
  closeTimeoutMs?: number;
  /** The sound every target publishes next to the picture (an Opus track); none: video only. */
  audio?: AudioFormat | null;
}

/** Sums over every target, for a one-line summary. */
export interface PublishTotals {
  targets: number;
  /** Targets whose server is taking the stream now. */
  publishing: number;
  sent: number;
  dropped: number;
  reconnects: number;
}

/** Most targets one server may publish to: each costs an ffmpeg, and a long list is more likely a mistake than a plan. */
export const MAX_PUBLISH_TARGETS = 8;

/**
 * The targets of `--publish` (repeatable), each checked, with `--publish-token-file`'s
 * credentials applied to those that carry none; throws {@link PublishUrlError}.
 */
export function parsePublishTargets(urls: readonly string[], credentials?: PublishCredentials, flag = "--publish"): PublishTarget[] {
  if (urls.length > MAX_PUBLISH_TARGETS) {
    throw new PublishUrlError(`too many ${flag} targets: ${urls.length}, at most ${MAX_PUBLISH_TARGETS}`);
  }
  const targets = urls.map((u) => parsePublishUrl(u, flag)).map((t) => (credentials ? withCredentials(t, credentials) : t));
  const seen = new Set<string>();
  for (const t of targets) {
    // Two pushes to one path fight over it: the server takes one and refuses the other.
    const key = `${t.scheme}://${t.host.toLowerCase()}:${t.port}${t.path}`;
    if (seen.has(key)) throw new PublishUrlError(`invalid ${flag}=${t.redacted}: the same target is given twice`);
    seen.add(key);
  }
  return targets;
}

/**
 * Every publish target behind one write(): the frame path sees a single sink. With h264 the
 * targets share one encoder, so the stream is encoded once however many servers receive it.
 */
export class Publishers implements AsyncDisposable {
  readonly #list: Publisher[];
  readonly #encoder: H264Encoder | null;

  /** One Publisher per target; ffmpeg is resolved once (FfmpegNotFoundError when missing). */
  constructor(opts: PublishersOptions) {
    const ffmpegPath = opts.targets.length > 0 ? opts.ffmpegPath ?? resolveFfmpeg().path : undefined;
    this.#encoder = opts.codec === "h264" && opts.targets.length > 0
      ? new H264Encoder({ fps: opts.fps, log: opts.log, ffmpegPath, timings: opts.timings, closeTimeoutMs: opts.closeTimeoutMs })
      : null;
    const encoder = this.#encoder ?? undefined;
    this.#list = opts.targets.map((target) => new Publisher({
      target, codec: opts.codec, fps: opts.fps, log: opts.log, ffmpegPath, encoder, timings: opts.timings, closeTimeoutMs: opts.closeTimeoutMs, audio: opts.audio,
    }));
  }

  /** A FrameSink: hands the frame to every target (with h264, to the encoder once); never throws, never waits. */
  readonly write = (frame: Frame): void => {
    if (this.#encoder) this.#encoder.write(frame);
    else for (const p of this.#list) p.write(frame);
  };

  /** A sound packet for every target (ignored when built without sound); never throws, never waits. */
  readonly writeAudio = (packet: AudioPacket): void => {
    for (const p of this.#list) p.writeAudio(packet);
  };

  /** One snapshot per target, in the order of their targets. */
  get stats(): PublisherStats[] {
    return this.#list.map((p) => p.stats);
  }

  /** The shared encoder's counters (h264), else null. */
  get encoder(): EncoderStats | null {
    return this.#encoder?.stats ?? null;
  }

  /** Sums over every target. */
  get totals(): PublishTotals {
    const t: PublishTotals = { targets: this.#list.length, publishing: 0, sent: 0, dropped: 0, reconnects: 0 };
    for (const s of this.stats) {
      if (s.state === "publishing") t.publishing++;
      t.sent += s.sent;
      t.dropped += s.dropped;
      t.reconnects += s.reconnects;
    }
    return t;
  }

  /** Ends the encoder (its last frames still go out), then every connection at once, and waits for all. */
  async close(): Promise<void> {
    await this.#encoder?.close();
    await Promise.all(this.#list.map((p) => p.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
