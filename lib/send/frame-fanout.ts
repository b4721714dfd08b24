import { seqLess } from "../wire/seq.ts";
import { SESSION_ID_OFFSET } from "../wire/datagram.ts";
import type { udp } from "bun";
import type { Frame } from "../wire/frame.ts";
import type { SealedFrame } from "./frame-sealer.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Delivery, PathCounters } from "../wire/control.ts";
import type { Layer, Size } from "./layer-ladder.ts";
import { Pacer } from "./pacer.ts";
import type { RateVerdict } from "./rate-control.ts";
import type { RepairServer } from "./repair-server.ts";
import type { ServerStats } from "./server-stats.ts";
import type { AdaptiveCounters, SendCounters, StreamTarget } from "./sessions.ts";
import { ViewerRate } from "./viewer-rate.ts";

/** One viewer's frames: where they go, the buffer they are cut into, and what was sent (read by admission). */
/** Frames remembered per viewer as sent, for its repairs: 8 s at 30 fps, far longer than any frame is held for resending. */
export const SENT_FRAMES_KEPT = 256;

interface Stream {
  kind: "viewer";
  target: StreamTarget;
  /** By the group until its viewer asks for unicast. */
  delivery: "multicast" | "unicast";
  /** A group member's layer: whose group it said it is in (0, the full layer's, until it says otherwise). */
  groupLayer: number;
  /** By UDP, or as datagram messages on its control connection (TCP delivery). */
  transport: "udp" | "tcp";
  sent: SendCounters;
  datagramsSent: number;
  /** Datagrams of an older frame not yet sent when a newer frame replaced them. */
  datagramsSuperseded: number;
  fragmenter: Fragmenter;
  /**
   * A paced viewer's second buffer: a frame is cut while the end of the previous one
   * may still be queued, so the two alternate (the fragmenter reuses its buffer).
   */
  spare: Fragmenter | null;
  /** When datagrams last went to it (an ICMP error is blamed on those sent to lately). */
  lastSentAt: number;
  /** A path-reports viewer's estimate and layer; null: sent as every viewer is. */
  rate: ViewerRate | null;
  framesSkipped: number;
  /** The latest frame number offered to it, sent or skipped. */
  lastOffered: number;
  /**
   * Its recent frames as sent (frame number → layer), oldest first: what its repairs may
   * ask for. Kept for a group member only when the camera has a group per layer.
   */
  sentFrames: Map<number, number>;
  /** What its last delivery message said (a new one goes out when its layer changes, or skips go on). */
  told: { layer: number; skipped: number; at: number };
  /** Its ViewerRate last heard the time (about once a second). */
  tickedAt: number;
}

/** A multicast group's frames (the full layer's, or a smaller one's): cut once, sent once, for every viewer in the group. */
interface GroupStream {
  kind: "group";
  layer: number;
  /** Members in it now: nothing is cut or sent for a group nobody is in. */
  members: number;
  fragmenter: Fragmenter;
  target: { address: string; port: number };
  streamId: number;
}

/** How the fan-out sends. */
export interface FanoutOptions {
  socket: udp.Socket<"buffer">;
  mtu: number;
  /** Frames per second and the fraction of the interval a frame's datagrams are spread over. */
  fps: number;
  spread: number;
  group: { address: string; port: number; streamId: number } | null;
  /**
   * With a group: the smaller layers' own groups (layer 1, 2, ... in order, at most one
   * fewer than `layers`). A member in one is sent that layer.
   */
  layerGroups?: { address: string; port: number; streamId: number }[];
  /** Shared with the server: the send counters are bumped here. */
  stats: ServerStats;
  /** A failed send, worth a (throttled) warning. */
  warnSend: (detail: string) => void;
  /**
   * The sizes frames are sent in, largest (the source) first; a path-reports viewer
   * whose path cannot carry the full one is moved down (default: the source size only).
   */
  layers?: Size[];
  /** The clock, ms (default performance.now; tests pass their own). */
  now?: () => number;
  /** A path-reports viewer's delivery message, to go out on its control connection. */
  tell?: (sessionId: number, msg: Delivery) => void;
  /** Loss repair for the viewers that negotiated it: keeps each frame, adds parity (lib/send/repair-server.ts). */
  repair?: RepairServer | null;
  /**
   * TCP delivery: whether session `id`'s connection takes a whole frame now (asked before
   * the frame is cut; no means skipped), and the frame's datagrams to write at once.
   */
  tcp?: { ready: (id: number) => boolean; send: (id: number, datagrams: Uint8Array[]) => void; sendAudio?: (id: number, datagram: Uint8Array) => boolean };
}

/** A path-reports viewer's estimate and layer hear the time this often. */
export const RATE_TICK_MS = 1000;

/** While frames are being skipped for a viewer, it is told how many this often. */
export const SKIPPED_TELL_MS = 1000;

/**
 * A viewer keeps its layer while its estimate carries this share of the layer's rate
 * (whole frames, fewer of them). One loss burst over 10 % sets the estimate to 0.85 of
 * what arrived, at most 0.77 of what was sent: with the ladder's own 0.9 a single burst
 * on a busy host (measured: a free viewer on loopback) halved the picture for seconds,
 * and each size change starts a new recording segment at the viewer. A path that
 * carries less than about 21 of 30 frames moves down.
 */
export const LADDER_DOWN_MARGIN = 0.7;

/** Weight of the newest frame in a layer's mean bytes per frame. */
const LAYER_MEAN_WEIGHT = 0.1;

/**
 * The sending side of the stream: every started session's datagrams, cut per viewer
 * (or once for the group), paced over part of the frame interval, with what each
 * session was sent counted here, where the sending happens. Admission reads those
 * counters through `sent`; nothing else writes them.
 */
export class FrameFanout {
  readonly #opts: FanoutOptions;
  readonly #streams = new Map<number, Stream>();
  readonly #pacer = new Pacer<Stream | GroupStream>();
  /** The groups by layer: [0] is the full layer's (the welcome's), the rest the smaller layers' own; empty without multicast. */
  readonly #groups: GroupStream[];
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  #pacing: Timer | null = null;
  /** When the pacing timer is set for; null when none is. */
  #pacingAt: number | null = null;
  readonly #layers: Layer[];
  readonly #frameIntervalMs: number;
  readonly #now: () => number;

  constructor(opts: FanoutOptions) {
    this.#opts = opts;
    const sizes = opts.layers ?? [];
    this.#layers = sizes.map((l) => ({ width: l.width, height: l.height, bytesPerFrame: null }));
    this.#frameIntervalMs = 1000 / opts.fps;
    this.#now = opts.now ?? (() => performance.now());
    const g = opts.group;
    const group = (layer: number, to: { address: string; port: number; streamId: number }): GroupStream => ({
      kind: "group", layer, members: 0, fragmenter: new Fragmenter(opts.mtu), target: { address: to.address, port: to.port }, streamId: to.streamId,
    });
    this.#groups = g ? [group(0, g)] : [];
    const extra = opts.layerGroups ?? [];
    if (g && extra.length >= Math.max(1, this.#layers.length)) throw new RangeError(`${extra.length} layer groups for ${this.#layers.length} layers`);
    if (g) extra.forEach((l, i) => this.#groups.push(group(i + 1, l)));
  }

  /** Sessions being sent to. */
  get size(): number {
    return this.#streams.size;
  }

  /** What session `id` has been sent; undefined when it is not being sent to. */
  sent(id: number): Readonly<SendCounters> | undefined {
    const stream = this.#streams.get(id);
    if (!stream) return undefined;
    return stream.rate ? { ...stream.sent, adaptive: this.#adaptive(stream, stream.rate) } : stream.sent;
  }

  /** The quality layers, largest first, each with its measured mean bytes per frame (as datagrams). */
  get layers(): readonly Readonly<Layer>[] {
    return this.#layers;
  }

  /** Layers below the full one that some viewer is on now: only these are worth encoding. */
  wantedLayers(): number[] {
    const out = new Set<number>();
    for (const st of this.#streams.values()) if (st.rate && st.rate.layer > 0) out.add(st.rate.layer);
    for (const g of this.#groups) if (g.layer > 0 && g.members > 0) out.add(g.layer);
    return [...out].sort((a, b) => a - b);
  }

  /**
   * A path-reports viewer's report: its own estimate and layer hear it, nobody else's.
   * Null when the session is not one (gone, or not paced to its path).
   */
  pathReport(id: number, path: PathCounters, now: number): RateVerdict | null {
    const stream = this.#streams.get(id);
    if (!stream?.rate) return null;
    const verdict = stream.rate.report(path, this.#layers, now);
    this.#tellIfDue(stream, stream.rate, now);
    return verdict;
  }

  /** Time passes: what is due goes out, and a path-reports viewer silent for long is slowed down to the lowest layer. */
  tick(now: number): void {
    this.#pump();
    for (const st of this.#streams.values()) {
      // A TCP viewer's reports are not judged (TCP paces itself): its silence is no silence.
      if (!st.rate || st.transport === "tcp" || now - st.tickedAt < RATE_TICK_MS) continue;
      st.tickedAt = now;
      st.rate.tick(this.#layers, now);
      this.#tellIfDue(st, st.rate, now);
    }
  }

  /** Starts sending to a session, counting from nothing. */
  start(target: StreamTarget): void {
    const stream: Stream = {
      kind: "viewer", target, delivery: target.delivery, groupLayer: 0, transport: "udp", sent: { framesSent: 0, firstFrame: null, lastFrame: null },
      datagramsSent: 0, datagramsSuperseded: 0, fragmenter: new Fragmenter(this.#opts.mtu), spare: null, lastSentAt: -Infinity,
      rate: null, framesSkipped: 0, lastOffered: 0, sentFrames: new Map(), told: { layer: 0, skipped: 0, at: -Infinity }, tickedAt: this.#now(),
    };
    // Only a viewer sent to alone can be paced to its own path.
    if (target.pathReports && target.delivery === "unicast" && this.#layers.length > 0) {
      stream.rate = new ViewerRate(this.#layers, { fps: this.#opts.fps, downMargin: LADDER_DOWN_MARGIN }, stream.tickedAt);
    }
    this.#streams.set(target.id, stream);
    if (stream.delivery === "multicast") this.#join(stream, 0);
  }

  /**
   * A group member says it is in layer `layer`'s group now: from the next frame of that
   * layer on it is counted there, and the layer is made while someone is in it. False
   * (nothing changes) for a layer without a group or a session not in the group: no
   * message makes anything be sent to a viewer's own address.
   */
  groupLayer(id: number, layer: number): boolean {
    const stream = this.#streams.get(id);
    if (stream?.delivery !== "multicast" || !Number.isInteger(layer) || !this.#groups[layer]) return false;
    this.#leave(stream);
    this.#join(stream, layer);
    return true;
  }

  /** Group members of each layer, full layer first (for tests and status). */
  get groupMembers(): number[] {
    return this.#groups.map((g) => g.members);
  }

  #join(stream: Stream, layer: number): void {
    stream.groupLayer = layer;
    this.#groups[layer]!.members++;
  }

  /** Out of its group; a group left empty drops what it still had queued. */
  #leave(stream: Stream): void {
    const g = this.#groups[stream.groupLayer]!;
    g.members--;
    if (g.members === 0) this.#pacer.remove(g);
  }

  /** The group does not reach this session: the next frame goes to it alone. */
  unicast(id: number): void {
    const stream = this.#streams.get(id);
    if (stream?.delivery !== "multicast") return;
    // The rest of the frame being paced goes to the group.
    this.#leave(stream);
    stream.delivery = "unicast";
    // Sent alone at the full size, as any viewer that fell back (what it was sent by the
    // group stays remembered at the layer it was sent at, for its repairs).
    stream.groupLayer = 0;
  }

  /**
   * Session `id`'s frames go by `transport` from the next frame on (a unicast session
   * only; a group member falls back first). What is still paced by UDP is dropped.
   */
  setTransport(id: number, transport: "udp" | "tcp"): void {
    const stream = this.#streams.get(id);
    if (!stream || stream.delivery !== "unicast" || stream.transport === transport) return;
    stream.transport = transport;
    if (transport === "tcp") this.#pacer.remove(stream);
    const rate = stream.rate;
    if (!rate) return;
    // A path that carried nothing (blocked UDP) moved it to the smallest layer: the new way starts at the full one.
    const now = this.#now();
    rate.restart(this.#layers, now);
    this.#tellIfDue(stream, rate, now);
  }

  /** Stops sending to a session; false when it was not being sent to. */
  stop(id: number): boolean {
    const stream = this.#streams.get(id);
    if (!stream) return false;
    if (stream.delivery === "multicast") this.#leave(stream);
    this.#streams.delete(id);
    this.#pacer.remove(stream);
    return true;
  }

  /** Sessions sent to at or after `since` (suspects of an ICMP error, which names no one). */
  sentToSince(since: number): number[] {
    return [...this.#streams.values()].filter((st) => st.lastSentAt >= since).map((st) => st.target.id);
  }

  /**
   * One frame (sealed once for all when encrypted) to every session on the full layer
   * (`layer` 0, the default) or on the lower layer `layer` (a smaller copy of the
   * same frame): what a spread viewer still has queued is replaced, never a backlog;
   * a viewer paced at its rate gets it whole or not at all (skipped).
   */
  send(frame: Frame, sealed: SealedFrame | null, layer = 0): void {
    const now = this.#now();
    const spreadMs = this.#frameIntervalMs * this.#opts.spread;
    const stats = this.#opts.stats;
    let measured = false;
    for (const stream of this.#streams.values()) {
      const rate = stream.rate;
      const multicast = stream.delivery === "multicast";
      if ((multicast ? stream.groupLayer : (rate?.layer ?? 0)) !== layer) continue;
      const sent = stream.sent;
      sent.firstFrame ??= frame.seq;
      sent.lastFrame = frame.seq;
      stream.lastOffered = frame.seq;
      // Its copy is its layer group's, cut and sent once below.
      if (multicast) {
        sent.framesSent++;
        // Its repairs are cut from the layer it was sent each frame at: it may have moved since.
        if (this.#groups.length > 1) this.#remember(stream, frame.seq, layer);
        continue;
      }
      const t = stream.target;
      if (stream.transport === "tcp") {
        this.#sendTcp(stream, frame, sealed, now, layer);
        continue;
      }
      const target = { port: t.udpPort, address: t.address };
      const pacing = rate?.pacing() ?? { kind: "free" };
      // Asked before the frame is cut: cutting a skipped frame would overwrite the one going out.
      if (pacing.kind === "rate" && !this.#pacer.canStart(stream, now, this.#frameIntervalMs)) {
        stream.framesSkipped++;
        stats.framesSkipped++;
        if (rate) this.#tellIfDue(stream, rate, now);
        continue;
      }
      let cutter = stream.fragmenter;
      if (pacing.kind === "rate") {
        cutter = stream.spare ??= new Fragmenter(this.#opts.mtu);
        stream.spare = stream.fragmenter;
        stream.fragmenter = cutter;
      }
      const datagrams = this.#repaired(sealed ? cutter.fragmentSealed(sealed, t.id) : cutter.fragment(frame, t.id), [t.id], now, layer);
      if (!measured) {
        measured = true;
        this.#measure(layer, datagrams);
      }
      sent.framesSent++;
      this.#remember(stream, frame.seq, layer);
      if (pacing.kind === "free") {
        const superseded = this.#pacer.enqueue(stream, target, datagrams, now, spreadMs);
        stream.datagramsSuperseded += superseded;
        stats.datagramsSuperseded += superseded;
      } else {
        this.#pacer.offer(stream, target, datagrams, now, pacing.bytesPerS, this.#frameIntervalMs);
      }
      if (rate) this.#tellIfDue(stream, rate, now);
    }
    const group = this.#groups[layer];
    if (group && group.members > 0) {
      const members = [...this.#streams.values()].filter((st) => st.delivery === "multicast" && st.groupLayer === layer).map((st) => st.target.id);
      const datagrams = this.#repaired(sealed ? group.fragmenter.fragmentSealed(sealed, group.streamId) : group.fragmenter.fragment(frame, group.streamId), members, now, layer);
      stats.datagramsSuperseded += this.#pacer.enqueue(group, group.target, datagrams, now, spreadMs);
      stats.groupFramesSent++;
      if (layer > 0) stats.layerGroupFramesSent++;
    }
    this.#pump();
  }

  /**
   * A TCP viewer's frame: whole when its connection is free enough, else skipped (the
   * next, newer frame gets the chance). No parity and no resends: TCP loses nothing.
   */
  #sendTcp(stream: Stream, frame: Frame, sealed: SealedFrame | null, now: number, layer: number): void {
    const tcp = this.#opts.tcp;
    const id = stream.target.id;
    if (!tcp || !tcp.ready(id)) {
      stream.framesSkipped++;
      this.#opts.stats.framesSkipped++;
      if (stream.rate) this.#tellIfDue(stream, stream.rate, now);
      return;
    }
    const datagrams = sealed ? stream.fragmenter.fragmentSealed(sealed, id) : stream.fragmenter.fragment(frame, id);
    stream.sent.framesSent++;
    stream.datagramsSent += datagrams.length;
    if (stream.rate) {
      // Counted as sent, as the viewer counts them arrived: its path counters stay comparable for when it is back on UDP.
      let bytes = 0;
      for (const d of datagrams) bytes += d.length;
      stream.rate.sent(bytes, datagrams.length);
    }
    tcp.send(id, datagrams);
    if (stream.rate) this.#tellIfDue(stream, stream.rate, now);
  }

  /** Frame `seq` went to it at `layer`: kept for its repairs, the oldest forgotten past SENT_FRAMES_KEPT. */
  #remember(stream: Stream, seq: number, layer: number): void {
    stream.sentFrames.set(seq, layer);
    if (stream.sentFrames.size > SENT_FRAMES_KEPT) stream.sentFrames.delete(stream.sentFrames.keys().next().value!);
  }

  /** A layer's mean bytes per frame as sent: what a viewer's estimate is held against. */
  #measure(layer: number, datagrams: Uint8Array[]): void {
    const l = this.#layers[layer];
    if (!l) return;
    let bytes = 0;
    for (const d of datagrams) bytes += d.length;
    l.bytesPerFrame = l.bytesPerFrame === null ? bytes : l.bytesPerFrame + LAYER_MEAN_WEIGHT * (bytes - l.bytesPerFrame);
  }

  #adaptive(stream: Stream, rate: ViewerRate): AdaptiveCounters {
    const l = this.#layers[rate.layer] ?? this.#layers[0]!;
    const r = rate.estimator.refused;
    return {
      layer: rate.layer, width: l.width, height: l.height, rateBytesPerS: rate.estimator.limited ? Math.round(rate.estimator.bytesPerS) : null,
      framesSkipped: stream.framesSkipped, reportsRefused: r.backwards + r.moreThanSent + r.absurd,
    };
  }

  /** Its delivery message: when its layer changed, and about once a second while frames are skipped for it. */
  #tellIfDue(stream: Stream, rate: ViewerRate, now: number): void {
    const told = stream.told;
    const moved = rate.layer !== told.layer;
    if (!moved && !(stream.framesSkipped > told.skipped && now - told.at >= SKIPPED_TELL_MS)) return;
    if (moved) this.#opts.stats.layerChanges++;
    stream.told = { layer: rate.layer, skipped: stream.framesSkipped, at: now };
    const a = this.#adaptive(stream, rate);
    this.#opts.tell?.(stream.target.id, {
      type: "delivery", layer: a.layer, width: a.width, height: a.height, rateBytesPerS: a.rateBytesPerS ?? 0,
      framesSkipped: a.framesSkipped, skippedThrough: stream.lastOffered,
    });
  }

  /** With repair (lib/send/repair-server.ts): the frame kept for resending, and its parity added. */
  #repaired(datagrams: Uint8Array[], members: number[], now: number, layer = 0): Uint8Array[] {
    return this.#opts.repair ? this.#opts.repair.outgoing(datagrams, members, now, layer) : datagrams;
  }

  /**
   * The layer session `id` was sent frame `frameNumber` at: what its repairs are cut
   * from. Null for a frame it was not sent (skipped for its path, or before it joined,
   * or longer ago than SENT_FRAMES_KEPT frames); 0 for a group member of a camera with
   * one group (it carries the full picture) and for a session it does not know; its
   * current layer for a frame not offered to it yet.
   */
  layerOf(id: number, frameNumber: number): number | null {
    const stream = this.#streams.get(id);
    if (!stream || (stream.delivery === "multicast" && this.#groups.length <= 1)) return 0;
    const layer = stream.sentFrames.get(frameNumber);
    if (layer !== undefined) return layer;
    const current = stream.delivery === "multicast" ? stream.groupLayer : (stream.rate?.layer ?? 0);
    // Not offered to it yet (a layer still being cut): not skipped, its current layer's.
    return seqLess(stream.lastOffered, frameNumber) ? current : null;
  }

  /**
   * Resent datagrams to session `id` alone (a repair answer); they count as sent to it.
   * On a free path at once; to a viewer paced to its path, at its rate behind what it
   * has queued: sent at once into a full path, they would be lost again with the
   * frames around them.
   */
  resend(id: number, datagrams: Uint8Array[]): void {
    const stream = this.#streams.get(id);
    if (!stream || datagrams.length === 0 || stream.transport === "tcp") return;
    const t = stream.target;
    const target = { port: t.udpPort, address: t.address };
    const pacing = stream.rate?.pacing() ?? { kind: "free" };
    if (pacing.kind === "free" || stream.delivery === "multicast") {
      this.#send(stream, target, datagrams, 0, datagrams.length);
      return;
    }
    this.#pacer.append(stream, target, datagrams, this.#now(), pacing.bytesPerS);
    this.#pump();
  }

  /**
   * One audio datagram (session id 0 in its header) to the viewers `plays` picks: at
   * once, unpaced (a packet is a few hundred bytes every 20 ms), each unicast viewer its
   * own copy with its session id, each multicast group with members that play audio one
   * copy with the group's stream id, a TCP viewer as a datagram message.
   */
  sendAudio(datagram: Uint8Array, plays: (id: number) => boolean): void {
    const stats = this.#opts.stats;
    const groups = new Set<number>();
    for (const stream of this.#streams.values()) {
      const id = stream.target.id;
      if (!plays(id)) continue;
      if (stream.delivery === "multicast") {
        groups.add(stream.groupLayer);
        continue;
      }
      const copy = withSessionId(datagram, id);
      if (stream.transport === "tcp") {
        if (this.#opts.tcp?.sendAudio?.(id, copy)) stats.audioDatagramsSent++;
        else stats.audioDatagramsDropped++;
        continue;
      }
      this.#sendAudioTo(copy, stream.target.udpPort, stream.target.address);
    }
    for (const layer of groups) {
      const g = this.#groups[layer];
      if (g && this.#sendAudioTo(withSessionId(datagram, g.streamId), g.target.port, g.target.address)) stats.groupDatagramsSent++;
    }
  }

  #sendAudioTo(bytes: Uint8Array, port: number, address: string): boolean {
    const stats = this.#opts.stats;
    // As in sending frames: an earlier datagram's ICMP error may surface on this call; try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        if (this.#opts.socket.send(bytes, port, address)) {
          stats.audioDatagramsSent++;
          stats.datagramsSent++;
          return true;
        }
        break;
      } catch (e) {
        stats.sendErrors++;
        this.#opts.warnSend(`${(e as Error).message} (sending to ${address}:${port})`);
      }
    }
    stats.audioDatagramsDropped++;
    return false;
  }

  /** One classroom picture, one datagram. Not taken or failing, it is left to the viewer's resend. */
  sendPicture(address: string, port: number, bytes: Uint8Array): void {
    // As in sending datagrams: an earlier datagram's ICMP error may surface on this call; try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        if (this.#opts.socket.send(bytes, port, address)) {
          this.#opts.stats.classicDatagramsSent++;
          return;
        }
        break;
      } catch (e) {
        this.#opts.stats.sendErrors++;
        this.#opts.warnSend(`${(e as Error).message} (sending to ${address}:${port})`);
      }
    }
    this.#opts.stats.classicSendErrors++;
  }

  /** Stops the pacing timer; what is queued is not sent. */
  close(): void {
    if (this.#pacing) clearTimeout(this.#pacing);
    this.#pacing = null;
    this.#pacingAt = null;
    this.#closed = true;
  }

  #closed = false;

  /** Sends what is due, then sets the timer for when the next datagram is (not a 1 ms poll). */
  readonly #pump = (): void => {
    if (this.#closed) return;
    const now = this.#now();
    const { due, sent } = this.#pacer.due(now, this.#send);
    // A full send buffer: what did not go out waits for the next tick.
    this.#opts.stats.sendRetries += due - sent;
    const next = this.#pacer.nextDueMs();
    if (next === null) {
      if (this.#pacing) clearTimeout(this.#pacing);
      this.#pacing = null;
      this.#pacingAt = null;
      return;
    }
    // At least a millisecond ahead: datagrams due every few microseconds with a timer
    // each left no turn for the control connections (measured: no report was read for
    // 5 s on loopback, and the sessions timed out). A socket that did not take what was
    // due is retried then too.
    const at = Math.max(next, now + 1);
    if (this.#pacing && this.#pacingAt !== null && this.#pacingAt <= at) return;
    if (this.#pacing) clearTimeout(this.#pacing);
    this.#pacingAt = at;
    this.#pacing = setTimeout(this.#onTimer, Math.max(0, at - now));
  };

  readonly #onTimer = (): void => {
    this.#pacing = null;
    this.#pacingAt = null;
    this.#pump();
  };

  /** One viewer's (or the group's) due datagrams in one sendMany; a throw (EPERM, ENETUNREACH...) drops them, counted. */
  readonly #send = (stream: Stream | GroupStream, target: { port: number; address: string }, datagrams: Uint8Array[], from: number, to: number): number => {
    const stats = this.#opts.stats;
    const out = this.#sendBuf;
    out.length = 0;
    for (let i = from; i < to; i++) out.push(datagrams[i]!, target.port, target.address);
    let took = -1;
    // An ICMP error left by an earlier datagram (a dead viewer's port) is reported by
    // whichever send comes next, for any viewer: that call took nothing, so try again.
    for (let attempt = 0; attempt < 3 && took < 0; attempt++) {
      try {
        took = this.#opts.socket.sendMany(out);
      } catch (e) {
        stats.sendErrors++;
        this.#opts.warnSend(`${(e as Error).message} (sending to ${target.address}:${target.port})`);
      }
    }
    out.length = 0;
    if (took < 0) {
      // Still failing: give up this viewer's due datagrams rather than spin on them.
      stats.datagramsDropped += to - from;
      return to - from;
    }
    stats.datagramsSent += took;
    if (stream.kind === "group") {
      stats.groupDatagramsSent += took;
      return took;
    }
    stream.datagramsSent += took;
    stream.lastSentAt = this.#now();
    if (stream.rate) {
      // Whole datagram lengths, as the viewer counts what arrives.
      let bytes = 0;
      for (let i = from; i < from + took; i++) bytes += datagrams[i]!.length;
      stream.rate.sent(bytes, took);
    }
    return took;
  };
}

/** A copy of `datagram` with `id` in its session id field. */
function withSessionId(datagram: Uint8Array, id: number): Uint8Array {
  const copy = datagram.slice();
  new DataView(copy.buffer, copy.byteOffset + SESSION_ID_OFFSET, 4).setUint32(0, id >>> 0);
  return copy;
}
