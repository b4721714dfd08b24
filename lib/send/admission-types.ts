import type { Fields } from "../log/format.ts";
import type { SessionKeys } from "../net/session-keys.ts";
import { MAX_REFUSE_TEXT_BYTES, type ControlMessage, type LayerGroup, type MulticastGroup, type PathCounters, type RefuseReason, type Welcome } from "../wire/control.ts";
import type { ConnId } from "./connection.ts";
import type { SendCounters, StreamTarget } from "./sessions.ts";
import type { AdmissionAuth } from "./token-exchange.ts";

/** What the socket wrapper must do, in order. */
export type AdmissionAction =
  | { kind: "send"; conn: ConnId; msg: ControlMessage }
  /**
   * The connection speaks lancam: decode `bytes` (everything it sent so far) as
   * control messages, and every byte after them.
   */
  | { kind: "control"; conn: ConnId; bytes: Uint8Array }
  /** Send `bytes` as one UDP datagram to a classroom viewer, from the socket its answers come to. */
  | { kind: "datagram"; conn: ConnId; address: string; port: number; bytes: Uint8Array }
  /**
   * From now on tag what is sent to this connection and check what comes from it
   * (`keys`: its session keys; `keys.wrap` wraps the stream keys sent to it).
   */
  | { kind: "secure"; conn: ConnId; keys: SessionKeys }
  /**
   * Start sending frames to the session (when secured, its stream key first): by the
   * multicast group when session.delivery says so, else to session.address:session.udpPort
   * stamped with session.id. The sender keeps its own SendCounters for session.id.
   */
  | { kind: "start"; conn: ConnId; session: StreamTarget }
  /** The group does not reach this session's viewer: send to its own address and UDP port from now on. */
  | { kind: "unicast"; conn: ConnId }
  /** The session's viewer moved to layer `layer`'s multicast group (one its welcome listed): count it there from the next frame on. */
  | { kind: "group-layer"; conn: ConnId; sessionId: number; layer: number }
  | { kind: "stop"; conn: ConnId }
  /** A plausible report of a path-reports session carried path counters: its sender's estimate hears them. */
  | { kind: "path"; conn: ConnId; sessionId: number; path: PathCounters }
  /** Close once what was sent has been written; the connection is already forgotten. */
  | { kind: "close"; conn: ConnId; reason: string }
  | { kind: "log"; level: "info" | "warn" | "error" | "security"; message: string; fields: Fields };

/** What every welcome says about the stream, besides the session and the timers. */
export type StreamDescription = Pick<Welcome, "width" | "height" | "fpsMillihertz" | "fragmentSize" | "udpSourcePort" | "signing">;

/** One of the server's cameras, as its welcomes describe it. */
export interface AdmissionCamera {
  /** Its name, or its number as text when it has none (lib/wire/camera-name.ts). */
  name: string;
  stream: StreamDescription;
  /** Its multicast group, or null: unicast only. */
  multicast: MulticastGroup | null;
  /** Its smaller layers' groups (layer 1, 2, ...), offered to viewers that pick their own; absent or empty: the full layer's group only. */
  layerGroups?: LayerGroup[];
}

/** How admission is set up; times in ms of the same clock as the `now` arguments. */
export interface AdmissionOptions {
  maxClients: number;
  /** Connections that have not said hello yet, from all addresses together. */
  maxPending: number;
  heartbeatMs: number;
  /** Silence after which a session ends. */
  timeoutMs: number;
  /** How long a connection may take to say hello, and (with a token) to answer the challenge (default DEFAULT_HELLO_TIMEOUT_MS). */
  helloTimeoutMs?: number;
  /** Viewers of every kind from one address (default DEFAULT_MAX_PER_HOST). */
  maxPerHost?: number;
  /** How long a session's UDP port may answer only with ICMP errors before it ends (default 5000). */
  unreachableMs?: number;
  /** With a token: viewers prove it before they are welcomed, and frames are encrypted. */
  auth?: AdmissionAuth | null;
  /** Resume secrets; random by default. */
  randomSecret?: () => Uint8Array;
  stream: StreamDescription;
  /**
   * The cameras a hello may ask for, by number; each with its own stream and group. Absent:
   * one camera, "0", with `stream` and `multicast`. A server with several names them in
   * its welcomes and refuses a hello that asks for one it does not have.
   */
  cameras?: readonly AdmissionCamera[];
  /** The wall clock (µs since the Unix epoch) at `now`, for heartbeats. */
  wallClockUs: (now: number) => number;
  /** Session id source; random by default. */
  randomId?: () => number;
  /** Classroom viewers' resend and timeout (ClassicViewers' defaults: 500 and 5000 ms). */
  classic?: { resendMs?: number; timeoutMs?: number };
  /** The stream's multicast group: viewers that can join it are sent there. Null: unicast only. */
  multicast?: MulticastGroup | null;
  /** What the sender has sent to a session so far (it counts where it sends); nothing when unknown. */
  sent?: (sessionId: number) => Readonly<SendCounters> | undefined;
}

/** The hello deadline by default: a real viewer says hello within a millisecond of connecting. */
export const DEFAULT_HELLO_TIMEOUT_MS = 2000;

/** admitOther's answer: the actions (log lines) and, when there is no place, why. */
export interface OtherAdmission {
  refused: string | null;
  actions: AdmissionAction[];
}

/**
 * Connections without hello yet from one address; one more evicts that address's
 * oldest. A real viewer says hello within a millisecond of connecting, but a lab
 * machine may start many viewers at the same moment, so this is not tiny; it keeps one
 * host from taking every pending place (maxPending) and locking the others out.
 */
export const MAX_PENDING_PER_ADDRESS = 16;

/** A refusal, logged and carried out in one place (Admission.#refuse). */
export interface Refusal {
  /** What the viewer is told; null for one that understands no refuse (a classroom viewer, a stranger): it is just closed. */
  reason: RefuseReason | null;
  text: string;
  /** Security events (auth, lockout) are logged with Logger.security. */
  level: "warn" | "security";
  /** The log line's message (default "client refused") and fields, in the order printed. */
  message?: string;
  fields: Fields;
}

const utf8 = new TextEncoder();

/** `text` cut to what a refuse can carry, so a long decode error message cannot make the encoder throw. */
export function refuseText(text: string): string {
  if (utf8.encode(text).length <= MAX_REFUSE_TEXT_BYTES) return text;
  let cut = text.slice(0, MAX_REFUSE_TEXT_BYTES - 3);
  while (utf8.encode(cut).length > MAX_REFUSE_TEXT_BYTES - 3) cut = cut.slice(0, -1);
  return cut + "...";
}

