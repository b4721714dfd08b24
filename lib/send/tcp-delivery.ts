import { encodeControl, SwitchReason, TransportEvent, type Switch, type Transport, type TransportName } from "../wire/control.ts";

/**
 * Silence after which a viewer sent frames by UDP, whose reports say nothing arrived, is
 * told so. Reports come about once a second, so the viewer hears it after about 3 s.
 */
export const SILENT_AFTER_MS = 2500;

/**
 * A frame goes to a TCP viewer only while its kernel holds at most this much unsent:
 * more means the path is still carrying an earlier frame, and a frame written now would
 * only wait behind it (lag). Skipped instead; the newest frame wins.
 */
export const TCP_LOW_WATER_BYTES = 64 * 1024;

/** What a refused switch to TCP says when the server runs with --no-tcp-delivery. */
export const TCP_REFUSED_TEXT = "this server sends frames by UDP only (it runs with --no-tcp-delivery)";

/** What a refused switch to TCP says to a viewer that the multicast group reaches. */
export const IN_GROUP_TEXT = "this viewer gets the multicast group; frames go over TCP only to a viewer sent to its own port";

/** At most one log line per viewer for its switches in this interval (a viewer may send them without end). */
export const SWITCH_LOG_MS = 1000;

/** One viewer's transport, as status pages and the leave line show it. */
export interface TransportCounters {
  transport: TransportName;
  /** Frames sent over TCP this session, and those skipped because its connection was still busy. */
  tcpFramesSent: number;
  tcpFramesSkipped: number;
  /** Frames went to it by UDP and its reports said none arrived (at any time this session). */
  noDatagrams: boolean;
  /** Switches it asked for and got (either way). */
  switches: number;
}

interface Entry {
  counters: TransportCounters;
  /** Sent by the group: its own fallback covers it, silence is not judged here. */
  multicast: boolean;
  /** Since when UDP is judged, and what was sent and received then; null: the next report sets it. */
  base: { at: number; sent: number; received: number } | null;
  /** The viewer was told that nothing arrived since the last switch to UDP. */
  told: boolean;
  /** When a switch of its was last logged, and those not logged since. */
  logged: { at: number; suppressed: number };
}

/** What the caller carries out for a viewer's report or switch. */
export interface TransportOutcome {
  /** A message for the viewer. */
  tell?: Transport;
  log?: { level: "info" | "warn"; message: string; fields: Record<string, string | number | undefined> };
  /** The first time this viewer's reports showed that nothing arrived by UDP (counted once per viewer). */
  firstSilence?: boolean;
}

/**
 * The server's side of TCP delivery, without sockets: which way each session's datagrams
 * go, whether a UDP viewer's reports show that nothing reaches it (said once per viewer
 * in the log, and to the viewer each time), its switches (refused with --no-tcp-delivery),
 * and for each frame whether a TCP viewer's connection is free enough to take it.
 */
export class TcpDelivery {
  readonly #allowTcp: boolean;
  readonly #entries = new Map<number, Entry>();

  constructor(opts: { allowTcp: boolean }) {
    this.#allowTcp = opts.allowTcp;
  }

  /** A session starts on UDP (by the group when `multicast`). */
  join(id: number, now: number, multicast: boolean): void {
    this.#entries.set(id, {
      counters: { transport: "udp", tcpFramesSent: 0, tcpFramesSkipped: 0, noDatagrams: false, switches: 0 },
      multicast, base: { at: now, sent: 0, received: 0 }, told: false, logged: { at: -Infinity, suppressed: 0 },
    });
  }

  /** A session in the group fell back to its own port: UDP is judged from now. */
  unicast(id: number): void {
    const e = this.#entries.get(id);
    if (!e) return;
    e.multicast = false;
    e.base = null;
  }

  /** The session ended; its counters for the leave line. */
  leave(id: number): TransportCounters | undefined {
    const e = this.#entries.get(id);
    this.#entries.delete(id);
    return e?.counters;
  }

  /** Its counters; undefined for a session it does not know. */
  counters(id: number): Readonly<TransportCounters> | undefined {
    return this.#entries.get(id)?.counters;
  }

  /** How session `id`'s datagrams go now (udp for one it does not know). */
  transport(id: number): TransportName {
    return this.#entries.get(id)?.counters.transport ?? "udp";
  }

  /**
   * A report: `received` is what it counts as arrived this session (frames and
   * datagrams, any measure that grows when something arrives), `sent` the frames sent to
   * it. On UDP, frames sent and nothing arriving for SILENT_AFTER_MS is a blocked path.
   */
  report(id: number, received: number, sent: number, now: number): TransportOutcome {
    const e = this.#entries.get(id);
    if (!e || e.multicast || e.counters.transport !== "udp") return {};
    // Set by the first report after a switch: what came by TCP before it is counted by then.
    if (!e.base || received < e.base.received) {
      e.base = { at: now, sent, received };
      return {};
    }
    if (received !== e.base.received) {
      // Something arrives: UDP works (again); a later block is a new silence, told again.
      e.base = { at: now, sent, received };
      e.told = false;
      return {};
    }
    if (e.told || sent <= e.base.sent || now - e.base.at < SILENT_AFTER_MS) return {};
    e.told = true;
    const first = !e.counters.noDatagrams;
    e.counters.noDatagrams = true;
    const tell: Transport = { type: "transport", transport: "udp", event: TransportEvent.Silent, framesSent: sent, text: "" };
    const fields = { framesSent: sent - e.base.sent, seconds: ((now - e.base.at) / 1000).toFixed(1) };
    return first
      ? { tell, firstSilence: true, log: { level: "warn", message: "no datagrams reached the viewer", fields: { ...fields, likely: "a firewall drops UDP on its side", fix: this.#allowTcp ? "it can switch to tcp" : "allow its UDP port (tcp delivery is off)" } } }
      : { tell, log: { level: "info", message: "udp still blocked for the viewer", fields } };
  }

  /** The viewer asks for its datagrams by another way; refused while TCP is off or it is in the multicast group. */
  switch(id: number, msg: Switch, sent: number, now: number): TransportOutcome {
    const e = this.#entries.get(id);
    if (!e) return {};
    const out = this.#switch(e, msg, sent);
    if (!out.log) return out;
    // Every switch is answered; its log line only once a second, the rest counted into the next.
    if (now - e.logged.at < SWITCH_LOG_MS) {
      e.logged.suppressed++;
      return { tell: out.tell };
    }
    out.log.fields.similar = e.logged.suppressed || undefined;
    e.logged = { at: now, suppressed: 0 };
    return out;
  }

  #switch(e: Entry, msg: Switch, sent: number): TransportOutcome {
    const reason = msg.reason === SwitchReason.Silent ? "nothing arrived by udp" : msg.reason === SwitchReason.Asked ? "asked for" : "trying udp again";
    if (msg.transport === "tcp" && (!this.#allowTcp || e.multicast)) {
      const why = e.multicast ? "in the multicast group" : "--no-tcp-delivery";
      return {
        tell: { type: "transport", transport: e.counters.transport, event: TransportEvent.Refused, framesSent: sent, text: e.multicast ? IN_GROUP_TEXT : TCP_REFUSED_TEXT },
        log: { level: "info", message: "tcp delivery refused", fields: { reason, why } },
      };
    }
    const before = e.counters.transport;
    if (before !== msg.transport) e.counters.switches++;
    e.counters.transport = msg.transport;
    if (msg.transport === "udp") {
      e.base = null;
      e.told = false;
    }
    return {
      tell: { type: "transport", transport: msg.transport, event: TransportEvent.Switched, framesSent: sent, text: "" },
      log: before === msg.transport ? undefined : { level: "info", message: "viewer transport", fields: { transport: msg.transport, reason } },
    };
  }

  /**
   * Whether a frame may be written to TCP viewer `id` now: nothing of ours queued and
   * the kernel holding at most TCP_LOW_WATER_BYTES (`unsent`; null where unknown, then
   * only the queue counts). Counted either way.
   */
  offer(id: number, queued: number, unsent: number | null): boolean {
    const c = this.#entries.get(id)?.counters;
    if (!c) return false;
    const ok = queued === 0 && (unsent ?? 0) <= TCP_LOW_WATER_BYTES;
    if (ok) c.tcpFramesSent++;
    else c.tcpFramesSkipped++;
    return ok;
  }

  /** A frame was offered and taken but the write failed: it was not sent after all. */
  unsent(id: number): void {
    const c = this.#entries.get(id)?.counters;
    if (c && c.tcpFramesSent > 0) c.tcpFramesSent--;
  }
}

/** One frame's datagrams as datagram messages, back to back in one buffer (one write). */
export function frameMessages(datagrams: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const d of datagrams) size += 3 + d.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const d of datagrams) {
    // The codec's own framing (length, type 14, the datagram), without a copy per message.
    const length = 1 + d.length;
    out[at] = length >> 8;
    out[at + 1] = length & 0xff;
    out[at + 2] = DATAGRAM_TYPE;
    out.set(d, at + 3);
    at += 3 + d.length;
  }
  return out;
}

const DATAGRAM_TYPE = encodeControl({ type: "datagram", bytes: new Uint8Array(1) })[2]!;
