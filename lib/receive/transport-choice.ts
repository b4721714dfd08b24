import { SwitchReason, TransportEvent, type Switch, type Transport, type TransportName } from "../wire/control.ts";

/** How the viewer wants its frames: UDP and TCP when UDP does not get through (auto), UDP only, or TCP only. */
export type TransportMode = "auto" | "udp" | "tcp";

/** Every transport mode, for the flag's parser and help. */
export const TRANSPORT_MODES: readonly TransportMode[] = ["auto", "udp", "tcp"];

/**
 * After this long on TCP (auto), UDP is tried again: a firewall rule may have been
 * fixed, and UDP is cheaper for the server and never waits behind a slow frame.
 */
export const RETRY_UDP_MS = 60_000;

/** How long a UDP retry waits for its first datagram before going back to TCP. */
export const RETRY_WAIT_MS = 3000;

/** What the stream client tells the machine. */
export type ChoiceInput =
  /** A session began; `offered`: its welcome set WELCOME_TCP_DELIVERY; `udpPort`: where this viewer receives. */
  | { type: "welcome"; offered: boolean; udpPort: number }
  /** A datagram of this session arrived, by UDP or by TCP. */
  | { type: "datagram"; via: TransportName }
  /** The server's transport message. */
  | { type: "transport"; msg: Transport }
  | { type: "tick" };

/** What the stream client carries out, and the viewer says. */
export type ChoiceAction =
  /** Send this switch to the server. */
  | { type: "send"; msg: Switch }
  /** The warning a user must see: UDP does not get through. Once per viewer. */
  | { type: "blocked"; text: string }
  /** Frames come by `transport` now; `why` for the log line. */
  | { type: "moved"; transport: TransportName; why: string }
  /** The server will not send by TCP; `text` is its reason. */
  | { type: "refused"; text: string };

interface Session {
  offered: boolean;
  udpPort: number;
  /** What the server does now, as far as this viewer knows. */
  on: TransportName;
  /** A switch sent and not yet answered. */
  asking: { transport: TransportName; at: number } | null;
  /** The server refused TCP this session: not asked again. */
  refused: boolean;
  /** On TCP (auto): when UDP is tried again. */
  retryAt: number | null;
  /** A UDP retry that has not seen a datagram yet: until when it waits. */
  probing: { deadline: number } | null;
  lastUdpAt: number;
}

/**
 * Which way a viewer's datagrams should come, apart from sockets: UDP first; when the
 * server says frames went by UDP and none arrived, one warning, and (auto) a switch to
 * TCP; on TCP, UDP again every RETRY_UDP_MS, kept when a datagram arrives by it within
 * RETRY_WAIT_MS, else back to TCP. `tcp` asks for TCP at once, `udp` never does.
 * Driven by `push(input, now)` with a monotonic clock in ms.
 */
export class TransportChoice {
  readonly #mode: TransportMode;
  readonly #retryUdpMs: number;
  #session: Session | null = null;
  #warned = false;

  constructor(opts: { mode: TransportMode; retryUdpMs?: number }) {
    this.#mode = opts.mode;
    this.#retryUdpMs = opts.retryUdpMs ?? RETRY_UDP_MS;
  }

  /** How frames come now (udp before any session). */
  get transport(): TransportName {
    return this.#session?.on ?? "udp";
  }

  /** Whether the warning that UDP does not get through was given. */
  get udpBlocked(): boolean {
    return this.#warned;
  }

  /**
   * Whether a UDP datagram would tell the machine anything now (a UDP retry is under
   * way): the stream client feeds UDP datagrams only then, not one call per datagram.
   */
  get awaitingUdp(): boolean {
    const s = this.#session;
    return s !== null && (s.probing !== null || s.asking?.transport === "udp");
  }

  /** Takes one input at `now` (ms, monotonic); returns what to carry out, in order. */
  push(input: ChoiceInput, now: number): ChoiceAction[] {
    if (input.type === "welcome") return this.#welcome(input.offered, input.udpPort, now);
    const s = this.#session;
    if (!s) return [];
    switch (input.type) {
      case "datagram":
        return this.#datagram(s, input.via, now);
      case "transport":
        return this.#transport(s, input.msg, now);
      case "tick":
        return this.#tick(s, now);
    }
  }

  #welcome(offered: boolean, udpPort: number, now: number): ChoiceAction[] {
    const endedOnTcp = this.#session?.on === "tcp";
    const s: Session = { offered, udpPort, on: "udp", asking: null, refused: false, retryAt: null, probing: null, lastUdpAt: -Infinity };
    this.#session = s;
    // A reconnect after UDP was found blocked: straight back to TCP (UDP is retried later as ever).
    if (this.#mode === "auto" && endedOnTcp && offered) return [this.#ask(s, "tcp", SwitchReason.Silent, now)];
    if (this.#mode !== "tcp") return [];
    if (!offered) {
      s.refused = true;
      return [{ type: "refused", text: "the server does not offer TCP delivery (an older lancam)" }];
    }
    return [this.#ask(s, "tcp", SwitchReason.Asked, now)];
  }

  #ask(s: Session, transport: TransportName, reason: SwitchReason, now: number): ChoiceAction {
    s.asking = { transport, at: now };
    return { type: "send", msg: { type: "switch", transport, reason } };
  }

  #datagram(s: Session, via: TransportName, now: number): ChoiceAction[] {
    if (via !== "udp") return [];
    s.lastUdpAt = now;
    // Trying UDP again (asked, or answered and waiting): one datagram is proof enough.
    const retrying = s.probing !== null || (s.asking?.transport === "udp");
    if (!retrying) return [];
    s.probing = null;
    s.on = "udp";
    return [{ type: "moved", transport: "udp", why: "udp gets through again" }];
  }

  #transport(s: Session, msg: Transport, now: number): ChoiceAction[] {
    switch (msg.event) {
      case TransportEvent.Silent: {
        const out: ChoiceAction[] = [];
        if (!this.#warned) {
          this.#warned = true;
          out.push({ type: "blocked", text: this.#blockedText(s, msg.framesSent) });
        }
        if (this.#mode !== "udp" && s.offered && !s.refused && s.asking?.transport !== "tcp") {
          s.probing = null;
          out.push(this.#ask(s, "tcp", SwitchReason.Silent, now));
        }
        return out;
      }
      case TransportEvent.Switched: {
        const asked = s.asking;
        s.asking = null;
        s.on = msg.transport;
        if (msg.transport === "tcp") {
          s.probing = null;
          s.retryAt = this.#mode === "auto" ? now + this.#retryUdpMs : null;
          return [{ type: "moved", transport: "tcp", why: this.#mode === "tcp" ? "asked for with --transport tcp" : "udp does not get through" }];
        }
        // Back on UDP: proven once a datagram comes by it (it may already have, overtaking this answer).
        if (!asked || s.lastUdpAt < asked.at) s.probing = { deadline: now + RETRY_WAIT_MS };
        return [];
      }
      case TransportEvent.Refused:
        s.asking = null;
        s.refused = true;
        s.probing = null;
        return [{ type: "refused", text: msg.text || "no reason given" }];
    }
  }

  #tick(s: Session, now: number): ChoiceAction[] {
    if (s.asking) return [];
    if (s.probing && now >= s.probing.deadline) {
      s.probing = null;
      return [this.#ask(s, "tcp", SwitchReason.Silent, now)];
    }
    if (s.on === "tcp" && s.retryAt !== null && now >= s.retryAt) {
      s.retryAt = null;
      return [this.#ask(s, "udp", SwitchReason.Retry, now)];
    }
    return [];
  }

  #blockedText(s: Session, framesSent: number): string {
    const port = s.udpPort;
    const cause = `no UDP datagram reached this viewer although the server sent ${framesSent} frame${framesSent === 1 ? "" : "s"}: a firewall on this machine or on the network most likely drops UDP port ${port}`;
    const allow = `allow incoming UDP port ${port} (for example: sudo iptables -I INPUT -p udp --dport ${port} -j ACCEPT, or sudo ufw allow ${port}/udp)`;
    if (this.#mode === "udp") return `${cause}. Fix: ${allow}, or run the viewer with --transport tcp. Still waiting for UDP`;
    if (!s.offered) return `${cause}. Fix: ${allow}; this server cannot send by TCP (an older lancam)`;
    return `${cause}. Asking the server to send over TCP instead; to get UDP back, ${allow}`;
  }
}
