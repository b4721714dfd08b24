import type { udp } from "bun";
import type { Frame } from "../wire/frame.ts";
import type { SealedFrame } from "./frame-sealer.ts";
import { Fragmenter } from "./fragmenter.ts";
import { Pacer } from "./pacer.ts";
import type { RepairServer } from "./repair-server.ts";
import type { ServerStats } from "./server-stats.ts";
import type { SendCounters, StreamTarget } from "./sessions.ts";

/** One viewer's frames: where they go, the buffer they are cut into, and what was sent (read by admission). */
interface Stream {
  kind: "viewer";
  target: StreamTarget;
  /** By the group until its viewer asks for unicast. */
  delivery: "multicast" | "unicast";
  sent: SendCounters;
  datagramsSent: number;
  /** Datagrams of an older frame not yet sent when a newer frame replaced them. */
  datagramsSuperseded: number;
  fragmenter: Fragmenter;
  /** When datagrams last went to it (an ICMP error is blamed on those sent to lately). */
  lastSentAt: number;
}

/** The multicast group's frames: cut once, sent once, for every viewer in the group. */
interface GroupStream {
  kind: "group";
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
  /** Shared with the server: the send counters are bumped here. */
  stats: ServerStats;
  /** A failed send, worth a (throttled) warning. */
  warnSend: (detail: string) => void;
  /** Loss repair for the viewers that negotiated it: keeps each frame, adds parity (lib/send/repair-server.ts). */
  repair?: RepairServer | null;
}

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
  readonly #group: GroupStream | null;
  /** Viewers whose frames go by the group. */
  #inGroup = 0;
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  #pacing: Timer | null = null;

  constructor(opts: FanoutOptions) {
    this.#opts = opts;
    const g = opts.group;
    this.#group = g ? { kind: "group", fragmenter: new Fragmenter(opts.mtu), target: { address: g.address, port: g.port }, streamId: g.streamId } : null;
  }

  /** Sessions being sent to. */
  get size(): number {
    return this.#streams.size;
  }

  /** What session `id` has been sent; undefined when it is not being sent to. */
  sent(id: number): Readonly<SendCounters> | undefined {
    return this.#streams.get(id)?.sent;
  }

  /** Starts sending to a session, counting from nothing. */
  start(target: StreamTarget): void {
    const stream: Stream = {
      kind: "viewer", target, delivery: target.delivery, sent: { framesSent: 0, firstFrame: null, lastFrame: null },
      datagramsSent: 0, datagramsSuperseded: 0, fragmenter: new Fragmenter(this.#opts.mtu), lastSentAt: -Infinity,
    };
    this.#streams.set(target.id, stream);
    if (stream.delivery === "multicast") this.#inGroup++;
  }

  /** The group does not reach this session: the next frame goes to it alone. */
  unicast(id: number): void {
    const stream = this.#streams.get(id);
    if (stream?.delivery !== "multicast") return;
    // The rest of the frame being paced goes to the group.
    stream.delivery = "unicast";
    this.#inGroup--;
  }

  /** Stops sending to a session; false when it was not being sent to. */
  stop(id: number): boolean {
    const stream = this.#streams.get(id);
    if (!stream) return false;
    if (stream.delivery === "multicast") this.#inGroup--;
    if (this.#inGroup === 0 && this.#group) this.#pacer.remove(this.#group);
    this.#streams.delete(id);
    this.#pacer.remove(stream);
    return true;
  }

  /** Sessions sent to at or after `since` (suspects of an ICMP error, which names no one). */
  sentToSince(since: number): number[] {
    return [...this.#streams.values()].filter((st) => st.lastSentAt >= since).map((st) => st.target.id);
  }

  /** One frame (sealed once for all when encrypted) to every session: replaces what is still queued, never a backlog. */
  send(frame: Frame, sealed: SealedFrame | null): void {
    const now = performance.now();
    const spreadMs = (1000 / this.#opts.fps) * this.#opts.spread;
    const stats = this.#opts.stats;
    for (const stream of this.#streams.values()) {
      const sent = stream.sent;
      sent.firstFrame ??= frame.seq;
      sent.lastFrame = frame.seq;
      sent.framesSent++;
      // Its copy is the group's, cut and sent once below.
      if (stream.delivery === "multicast") continue;
      const t = stream.target;
      const datagrams = this.#repaired(sealed ? stream.fragmenter.fragmentSealed(sealed, t.id) : stream.fragmenter.fragment(frame, t.id), [t.id], now);
      const superseded = this.#pacer.enqueue(stream, { port: t.udpPort, address: t.address }, datagrams, now, spreadMs);
      stream.datagramsSuperseded += superseded;
      stats.datagramsSuperseded += superseded;
    }
    const group = this.#group;
    if (group && this.#inGroup > 0) {
      const members = [...this.#streams.values()].filter((st) => st.delivery === "multicast").map((st) => st.target.id);
      const datagrams = this.#repaired(sealed ? group.fragmenter.fragmentSealed(sealed, group.streamId) : group.fragmenter.fragment(frame, group.streamId), members, now);
      stats.datagramsSuperseded += this.#pacer.enqueue(group, group.target, datagrams, now, spreadMs);
      stats.groupFramesSent++;
    }
    this.#pump();
  }

  /** With repair (lib/send/repair-server.ts): the frame kept for resending, and its parity added. */
  #repaired(datagrams: Uint8Array[], members: number[], now: number): Uint8Array[] {
    return this.#opts.repair ? this.#opts.repair.outgoing(datagrams, members, now) : datagrams;
  }

  /** Resent datagrams to session `id` alone, at once (a repair answer); they count as sent to it. */
  resend(id: number, datagrams: Uint8Array[]): void {
    const stream = this.#streams.get(id);
    if (!stream || datagrams.length === 0) return;
    const t = stream.target;
    this.#send(stream, { port: t.udpPort, address: t.address }, datagrams, 0, datagrams.length);
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
    if (this.#pacing) clearInterval(this.#pacing);
    this.#pacing = null;
  }

  #pump(): void {
    const { due, sent } = this.#pacer.due(performance.now(), this.#send);
    // A full send buffer: what did not go out waits for the next tick.
    this.#opts.stats.sendRetries += due - sent;
    if (this.#pacer.idle) {
      if (this.#pacing) clearInterval(this.#pacing);
      this.#pacing = null;
    } else if (!this.#pacing) {
      this.#pacing = setInterval(() => this.#pump(), 1);
    }
  }

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
    stream.lastSentAt = performance.now();
    return took;
  };
}
