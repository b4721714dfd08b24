/**
 * What the browser view shows and what it asks of the server: the viewer rows, the
 * server's state, and the admission hook. Plain types, so the server can fill them
 * from its own session table without this folder importing the sending side.
 *
 * Counter names are those of the viewer's `--stats` file (framesReceived,
 * framesMissing, framesIncomplete, framesDropped), so the page, /state and the
 * client's summary read alike.
 */

/** How a viewer watches: the lancam UDP protocol, the classroom program, or MJPEG over HTTP. */
export type ViewerKind = "udp" | "classic" | "browser";

/** One row of the viewers table, as /state returns it. */
export interface ViewerInfo {
  /** Session id (UDP: 8 hex digits as in the server log; browser: "http-N"). */
  id: string;
  kind: ViewerKind;
  address: string;
  /** UDP: the viewer's UDP port; browser: its TCP port. */
  port: number;
  name: string;
  /** The name of the camera it watches (ServerState.sources' name). */
  camera: string;
  /** Wall-clock ms since the Unix epoch. */
  joinedAt: number;
  /** Frames the server handed to this viewer. */
  framesSent: number;
  /** The viewer's own count (UDP: from its last report); null when it has not said. */
  framesReceived: number | null;
  /** Frames of which nothing arrived; null when unknown. */
  framesMissing: number | null;
  /** Frames started but never completed; null when unknown. */
  framesIncomplete: number | null;
  /**
   * Frames this viewer never got: framesMissing + framesIncomplete for UDP, frames
   * replaced by a newer one before a slow browser took them for MJPEG.
   */
  framesDropped: number | null;
  /** Frames the viewer wrote to its recordings; null when unknown (browsers never record). */
  framesRecorded: number | null;
  /** Frames per second over the last second; null lets the view derive it from framesReceived. */
  fps: number | null;
  /**
   * Median capture-to-arrival time over the last report, ms. For a browser this is
   * capture to the moment the frame is handed to its connection (the server cannot see further).
   */
  latencyP50Ms: number | null;
  /** Bytes of JPEG handed to this viewer; null when unknown. */
  bytesSent: number | null;
  /**
   * The picture size the server sends it now (its quality layer, 0 = full size): a
   * paced UDP viewer's, or a browser's on a camera with smaller sizes (one that falls
   * behind gets a smaller one); absent or null when it gets the source's size as every viewer does.
   */
  picture?: { layer: number; width: number; height: number } | null;
  /** The server's estimate of this viewer's path, bytes per second; absent or null while nothing limits it. */
  rateBytesPerS?: number | null;
  /** Whole frames the server skipped for it because its path still carried the previous one; absent or null when not paced. */
  framesSkipped?: number | null;
  /** Its loss repair; absent or null when it does not repair. */
  repair?: ViewerRepair | null;
  /** A lancam viewer's datagrams go by "udp" or "tcp" (TCP delivery, when UDP does not reach it); absent or null for others. */
  transport?: "udp" | "tcp" | null;
  /** Frames went to it by UDP and none arrived (a firewall drops UDP, most likely); absent or null when unknown. */
  noDatagrams?: boolean | null;
}

/** A repairing viewer's repair: its own counts (null until its first report with them) and what the server resent it. */
export interface ViewerRepair {
  datagramsRepairedByFec: number | null;
  datagramsRepairedByNack: number | null;
  datagramsUnrepaired: number | null;
  /** Frames complete too late for its live view, in time for its recorder. */
  framesRecordOnly: number | null;
  /** The repair's added delay over its repaired frames, ms; null while none was repaired. */
  delayP50Ms: number | null;
  delayP99Ms: number | null;
  datagramsResent: number;
  bytesResent: number;
  paritiesSent: number;
}

/** The stream as captured. */
export interface SourceInfo {
  /** "test", "camera:0", "file:/x.mp4", "gst:..." */
  description: string;
  width: number;
  height: number;
  /** Nominal frames per second. */
  fps: number;
}

/** One of the server's cameras: what it captures, what it is called, whether it gives frames now. */
export interface CameraSourceInfo extends SourceInfo {
  /** Its name, or its number ("0", "1", ...) when it has none: what `?camera=` and the labels use. */
  name: string;
  /** False while the camera has failed (unplugged) and is being retried: its viewers get no frames. */
  available: boolean;
  /** Frames read from this camera since the start. */
  framesCaptured: number;
}

/** The server's totals since start, shown in /state and /metrics. */
export interface ServerCounters {
  /** Frames read from every camera (an encode failure counts here, not in framesEncoded). */
  framesCaptured: number;
  /** UDP frames handed to the sender, summed over viewers. */
  framesSent: number;
  /** UDP payload bytes sent; null when the server does not count them. */
  bytesSent: number | null;
  /** What was not sent, by reason (e.g. datagramsDropped, datagramsSuperseded, framesNotSent). */
  drops: Record<string, number>;
  /** Loss repair's totals over every viewer; absent when the server does not repair. */
  repair?: { datagramsResent: number; bytesResent: number; requestsDropped: number; goneSent: number };
}

/** One media server the stream is pushed to (--publish), credentials already redacted. */
export interface PublishTargetInfo {
  url: string;
  codec: string;
  /** idle, connecting, publishing, backoff or closed. */
  state: string;
  /** Frames handed to its ffmpeg. */
  sent: number;
  /** Frames not sent: it was down, slow, or could not carry them. */
  dropped: number;
  reconnects: number;
  lastError: string | null;
}

/** What the server tells the view on every request for /state, /metrics and the page. */
export interface ServerState {
  /**
   * Every camera, index = its number: 1 to MAX_CAMERAS of them. The view takes their
   * number and names from its first call and serves those for its whole life; a camera
   * that fails stays listed, unavailable.
   */
  sources: CameraSourceInfo[];
  /** The UDP viewers; the view adds its own browser readers. */
  viewers: ViewerInfo[];
  counters: ServerCounters;
  /** Where the stream is published; absent or empty when nowhere. */
  publish?: PublishTargetInfo[];
}

/** A browser asking to watch. */
export interface AdmissionRequest {
  id: string;
  kind: "browser";
  address: string;
  port: number;
  name: string;
  /** The camera it asks to watch, by number (already known to exist). */
  camera: number;
}

/** The server's answer: a place, or the reason there is none (sent to the browser, logged). */
export type AdmissionResult = { ok: true } | { ok: false; reason: string };

/** Why a browser reader ended, as written in the leave line. */
export type BrowserLeaveReason = "connection closed" | "stalled" | "server shutdown";

/** What a browser reader was given, told to the hook when it leaves. */
export interface ReaderTotals {
  framesSent: number;
  /** Frames replaced by a newer one before the reader took them. */
  framesSkipped: number;
  /** The picture it was last sent (its size on the --layers ladder); absent when unknown. */
  picture?: { layer: number; width: number; height: number } | null;
}

/**
 * The server's say over browser readers, so they count toward its viewer limit. The
 * view writes the join, leave and refusal lines itself unless told the server does
 * (HttpViewOptions.logViewers false).
 */
export interface AdmissionHook {
  /** Called before a reader gets a frame; a refusal ends the request with 503 and the reason. */
  admit(request: AdmissionRequest): AdmissionResult;
  /** Called once for every admitted reader when it ends, with what it was given. */
  left(id: string, reason: BrowserLeaveReason, totals: ReaderTotals): void;
}
