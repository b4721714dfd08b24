import type { RepairCounts } from "../wire/control.ts";
import type { ClassicViewer } from "./classic-viewers.ts";
import type { SendCounters, Session } from "./sessions.ts";

/** A viewer of any kind, for status pages and the server's own view of who watches. */
export interface ViewerSummary {
  /**
   * Unique among viewers of its kind: a lancam viewer's session id (the log's
   * `session=`, in hex), a classroom viewer's connection number, admitOther's id.
   */
  id: number;
  /** "udp" (lancam), "classic" (the classroom program), or the kind given to admitOther. */
  kind: string;
  address: string;
  /** Where its frames go (udp, classic); null for viewers served elsewhere. */
  udpPort: number | null;
  /** The name its hello gave ("" for none, and always for classic viewers). */
  name: string;
  /** Wall-clock ms since the Unix epoch. */
  joinedAt: number;
  /** The camera it watches, by number (classroom viewers watch camera 0). */
  camera: number;
  /** Frames handed to it (classic: pictures sent, resends included). */
  framesSent: number;
  /** Its own count: a lancam viewer's last report, a classroom viewer's answers; null while unknown. */
  framesReceived: number | null;
  /** Frames it never completed (lost plus incomplete), from its last report; null while unknown. */
  framesLost: number | null;
  latencyP50Ms: number | null;
  /** Frames it received over its last second; null while unknown. */
  fps: number | null;
  /** The picture size it is sent now (its quality layer); null when that is not the server's to choose (every size is the source's). */
  picture?: { layer: number; width: number; height: number } | null;
  /** The server's estimate of its path, bytes per second; null while nothing limits it. */
  rateBytesPerS?: number | null;
  /** Whole frames not sent to it because its path was still carrying the previous one. */
  framesSkipped?: number | null;
  /** Its loss repair (its own counts from its last report, and what it was resent); absent when it does not repair. */
  repair?: ViewerRepairSummary;
  /** How its datagrams go now (udp or tcp, TCP delivery); absent for viewers that are not lancam's. */
  transport?: "udp" | "tcp" | null;
  /** Frames went to it by UDP and its reports said none arrived (a firewall, most likely). */
  noDatagrams?: boolean | null;
}

/** One repairing viewer's repair, as the server knows it. */
export interface ViewerRepairSummary {
  /** Its own counts from its last report; null until a report had them. */
  reported: RepairCounts | null;
  /** What the server resent it. */
  sent: NonNullable<SendCounters["repair"]>;
}

/** Every viewer of every kind, in the order they joined; `wallMs` turns the monotonic clock into the wall clock. */
export function summarize(
  sessions: Iterable<Session>, sent: (sessionId: number) => Readonly<SendCounters>, classic: Iterable<Readonly<ClassicViewer>>,
  others: Iterable<{ id: number; kind: string; address: string; name: string; joinedAt: number; camera: number; counters: OtherCounters }>, wallMs: (t: number) => number,
): ViewerSummary[] {
  const out: ViewerSummary[] = [];
  for (const s of sessions) {
    const r = s.lastReport;
    const c = sent(s.id);
    const a = c.adaptive;
    out.push({
      id: s.id, kind: "udp", address: s.address, udpPort: s.udpPort, name: s.name, joinedAt: wallMs(s.joinedAt), camera: s.camera, framesSent: c.framesSent,
      framesReceived: r ? r.framesReceived : null, framesLost: r ? r.framesLost + r.framesIncomplete : null,
      latencyP50Ms: r ? r.latencyP50Us / 1000 : null, fps: r ? r.fpsMillihertz / 1000 : null,
      ...(a && { picture: { layer: a.layer, width: a.width, height: a.height }, rateBytesPerS: a.rateBytesPerS, framesSkipped: a.framesSkipped }),
      ...(c.repair && { repair: { reported: s.lastRepair, sent: c.repair } }),
      ...(c.transport && { transport: c.transport.transport, noDatagrams: c.transport.noDatagrams }),
    });
  }
  for (const v of classic) {
    out.push({
      id: v.id, kind: "classic", address: v.address, udpPort: v.port, name: "", joinedAt: wallMs(v.joinedAt), camera: 0, framesSent: v.framesSent,
      framesReceived: v.answers, framesLost: null, latencyP50Ms: null, fps: null,
    });
  }
  for (const v of others) out.push({ id: v.id, kind: v.kind, address: v.address, udpPort: null, name: v.name, joinedAt: wallMs(v.joinedAt), camera: v.camera, ...v.counters });
  return out.sort((a, b) => a.joinedAt - b.joinedAt || a.id - b.id);
}

/** What a viewer served elsewhere reports about itself (see Admission.updateOther). */
export type OtherCounters = Pick<ViewerSummary, "framesSent" | "framesReceived" | "framesLost" | "latencyP50Ms" | "fps"> & Partial<Pick<ViewerSummary, "picture">>;
