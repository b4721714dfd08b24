import type { RepairServerOptions } from "./repair-server.ts";
import type { CameraOptions } from "./camera-stream.ts";
import type { Logger } from "../log/format.ts";
import type { GroupConfig } from "../net/multicast.ts";
import type { TokenKey } from "../net/session-keys.ts";
import type { LockoutOptions } from "./auth-lockout.ts";
import type { FitFunction } from "./classic-encoder.ts";
import type { ScaleFunction } from "./layer-encoder.ts";
import type { LayersFlag } from "./layer-ladder.ts";

/** How the server is set up. */
export interface StreamServerOptions {
  port: number;
  bind: string;
  mtu: number;
  maxClients: number;
  /** Camera 0's picture; `cameras`, when given, replaces it. */
  stream: { width: number; height: number; fps: number };
  /** Every camera by number, each with its own keys, layers and group (default: one, "0", with `stream`). */
  cameras?: readonly CameraOptions[];
  log: Logger;
  heartbeatMs?: number;
  timeoutMs?: number;
  /** Connections that have not said hello yet; one more evicts the oldest. */
  maxPending?: number;
  /** How long a connection may take to say hello (and answer the challenge). */
  helloTimeoutMs?: number;
  /** Viewers of every kind from one address. */
  maxPerHost?: number;
  /** How long a viewer's UDP port may answer only with ICMP errors before its session ends. */
  unreachableMs?: number;
  /** The token, stretched: viewers must prove it, and every frame is encrypted. Null: open to anyone. */
  token?: TokenKey | null;
  /** How repeated wrong tokens from one address are slowed down. */
  lockout?: LockoutOptions;
  /** Most control bytes held for a viewer that does not read (default MAX_PENDING_BYTES). */
  maxControlBacklog?: number;
  /** Fraction of the frame interval a frame's datagrams are spread over. */
  spread?: number;
  /**
   * Classroom viewers: JPEG quality of pictures re-encoded to fit one datagram
   * (default 80), their resend and timeout, and the fit function (tests pass their own).
   */
  classic?: { quality?: number; resendMs?: number; timeoutMs?: number; fit?: FitFunction };
  /** Send each datagram once to this multicast group for every viewer that can join it. Null: unicast only. */
  multicast?: GroupConfig | null;
  /** The session id of the group's datagrams; random (non-zero) by default. */
  streamId?: number;
  /**
   * Quality layers for viewers whose path cannot carry the full picture (--layers;
   * default auto). Off: every viewer gets the source size, paced to its path when it
   * sends path reports.
   */
  layers?: LayersFlag;
  /** JPEG quality of the smaller layers (default DEFAULT_LAYER_QUALITY); tests pass their own scale function. */
  layerQuality?: number;
  scaleJpeg?: ScaleFunction;
  /** Loss repair (resends on request, `--fec` parity) for viewers that offer it; null: none (default: on, `--fec auto`). */
  repair?: RepairServerOptions | null;
  /** Send a viewer's datagrams over its control connection when it asks (UDP does not reach it); false: refuse (default true). */
  tcpDelivery?: boolean;
}
