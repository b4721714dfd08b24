import {
  ByeReason, CAP_MULTICAST, CAP_MULTICAST_LAYERS, CAP_PATH_REPORTS, CAP_RESUME, fallbackReasonText, WELCOME_ENCRYPTED, WELCOME_MULTICAST, WELCOME_PATH_REPORTS, type ByeTotals, type ControlMessage, type Hello, type LayerGroup, type Welcome,
} from "../wire/control.ts";
import type { AdmissionAction, AdmissionOptions } from "./admission-types.ts";
import { implausible, type ClaimedCounts } from "./report-check.ts";
import { sessionHex, type SendCounters, type Session } from "./sessions.ts";

/** Where a session's message came from, what it is checked against, and the counters it may bump. */
export interface SessionContext {
  conn: number;
  /** address:port, as logged. */
  peer: string;
  sent: Readonly<SendCounters>;
  streamFpsMillihertz: number;
  now: number;
  counters: { reportsRejected: number; fallbacks: number };
}

/** Whether the session goes on, or ends: a bye (with its totals when they are plausible), or a message no server expects. */
export type SessionVerdict = { end: null } | { end: "goodbye"; totals: ByeTotals | undefined } | { end: "protocol error" };

/**
 * One message from a viewer with a session: heartbeats only prove it alive, reports
 * replace its last one unless impossible (then counted, logged once per session), a
 * fallback moves it from the group to its own port, a bye ends it, anything else is a
 * protocol error (bye 4). The caller has already marked it heard and ends it as told.
 */
export function sessionMessage(s: Session, msg: ControlMessage, ctx: SessionContext, out: AdmissionAction[]): SessionVerdict {
  const check = (counts: ClaimedCounts) => implausible(counts, { sent: ctx.sent, streamFpsMillihertz: ctx.streamFpsMillihertz, ageMs: ctx.now - s.joinedAt });
  switch (msg.type) {
    case "heartbeat":
      return { end: null };
    case "report": {
      const bad = check(msg);
      if (bad) reject(s, "report", bad, ctx, out);
      else {
        s.lastReport = { framesReceived: msg.framesReceived, framesLost: msg.framesLost, framesIncomplete: msg.framesIncomplete, latencyP50Us: msg.latencyP50Us, fpsMillihertz: msg.fpsMillihertz };
        // Shown on the status pages only, for this viewer alone: nothing is decided by them.
        if (msg.repair) s.lastRepair = { ...msg.repair };
        // Path counters steer only this session's own delivery, and only when its welcome asked for them.
        if (msg.path && s.pathReports) out.push({ kind: "path", conn: ctx.conn, sessionId: s.id, path: msg.path });
      }
      return { end: null };
    }
    case "fallback":
      // A repeat (the viewer asked twice, or was never in the group) changes nothing.
      if (s.delivery !== "multicast") return { end: null };
      s.delivery = "unicast";
      ctx.counters.fallbacks++;
      out.push({ kind: "unicast", conn: ctx.conn });
      out.push({
        kind: "log", level: "warn", message: "fallback",
        fields: { client: ctx.peer, udp: s.udpPort, session: sessionHex(s), reason: fallbackReasonText(msg.reason), detail: "multicast does not reach this viewer; sending to it alone" },
      });
      return { end: null };
    case "layer":
      // Only in a session whose welcome listed the layer groups, and only a layer listed
      // there: a viewer cannot make the server encode a layer it does not have.
      if (msg.layer >= s.groupLayers) return protocolError(msg, ctx, out);
      // After a fallback it is sent alone, at the full size; a repeat changes nothing.
      if (s.delivery !== "multicast" || msg.layer === s.groupLayer) return { end: null };
      s.groupLayer = msg.layer;
      out.push({ kind: "group-layer", conn: ctx.conn, sessionId: s.id, layer: msg.layer });
      return { end: null };
    case "bye": {
      const bad = msg.totals && check(msg.totals);
      if (bad) reject(s, "bye totals", bad, ctx, out);
      return { end: "goodbye", totals: bad ? undefined : msg.totals };
    }
    default:
      return protocolError(msg, ctx, out);
  }
}

/** A message no server expects here: logged, answered with bye 4, the session ended. */
function protocolError(msg: ControlMessage, ctx: SessionContext, out: AdmissionAction[]): SessionVerdict {
  out.push({ kind: "log", level: "warn", message: "unexpected control message", fields: { client: ctx.peer, type: msg.type } });
  out.push({ kind: "send", conn: ctx.conn, msg: { type: "bye", reason: ByeReason.ProtocolError } });
  return { end: "protocol error" };
}

/** Counted and ignored; logged once per session, so a viewer sending nonsense cannot fill the log. */
function reject(s: Session, what: string, why: string, ctx: SessionContext, out: AdmissionAction[]): void {
  ctx.counters.reportsRejected++;
  if (s.reportsRejected++ === 0) {
    out.push({ kind: "log", level: "warn", message: "report rejected", fields: { client: ctx.peer, udp: s.udpPort, session: sessionHex(s), what, why } });
  }
}

/**
 * The welcome for a new session: the stream, the timers, encryption, the multicast
 * group (only for a viewer that can join one and ask for unicast when it gets nothing;
 * the session's delivery is set to match), the resume secret for a viewer that keeps it,
 * and path reports for a unicast viewer that sends them (its rate and layer follow its path).
 */
export function welcomeFor(s: Session, hello: Hello, encrypted: boolean, opts: Pick<AdmissionOptions, "stream" | "heartbeatMs" | "timeoutMs" | "multicast"> & { layerGroups?: LayerGroup[] }): Welcome {
  const welcome: Welcome = { type: "welcome", sessionId: s.id, ...opts.stream, heartbeatMs: opts.heartbeatMs, timeoutMs: opts.timeoutMs, flags: encrypted ? WELCOME_ENCRYPTED : 0 };
  const group = opts.multicast;
  if (group && hello.capabilities & CAP_MULTICAST) {
    welcome.flags |= WELCOME_MULTICAST;
    welcome.multicast = group;
    s.delivery = "multicast";
    // A group per layer only for a viewer that picks its own (an older one stays in the full layer's).
    const layers = opts.layerGroups ?? [];
    if (layers.length > 0 && hello.capabilities & CAP_MULTICAST_LAYERS) {
      welcome.layerGroups = layers.map((g) => ({ ...g }));
      s.groupLayers = layers.length + 1;
    }
  }
  if (hello.capabilities & CAP_RESUME) welcome.resume = s.resume;
  // Paced to its own path only when sent to alone (lib/send/frame-fanout.ts): the group's
  // one copy cannot be paced per viewer. A group member's path counters still tell
  // `--fec auto` its loss, and parity is what repairs the group's losses at once.
  if (hello.capabilities & CAP_PATH_REPORTS) {
    welcome.flags |= WELCOME_PATH_REPORTS;
    s.pathReports = true;
  }
  return welcome;
}
