/**
 * Joins the browser view to the stream server: the view's state provider (the cameras
 * and every viewer the server has, in the --stats counter names), its admission hook
 * (browser readers take places under --max-clients, and the server logs them like any
 * viewer) and the smaller pictures for browser readers that fall behind (the --layers ladder).
 */
import type { ReaderLayers } from "../http/camera-layers.ts";
import type { AdmissionHook, CameraSourceInfo, PublishTargetInfo, ServerState, ViewerInfo, ViewerRepair } from "../http/viewer-info.ts";
import type { ViewerSummary } from "../send/admission.ts";
import { LayerEncoder, type ScaleFunction } from "../send/layer-encoder.ts";
import { LayersError, layerSizes, type LayersFlag, type Size } from "../send/layer-ladder.ts";
import { StartError } from "../send/start-error.ts";
import type { ViewerRepairSummary } from "../send/viewer-summary.ts";
import type { StreamServer } from "../send/stream-server.ts";

/** The parts of the server the view needs (tests pass a fake). */
export type ViewedServer = Pick<StreamServer, "viewers" | "updateOther" | "leaveOther" | "stats"> & Partial<Pick<StreamServer, "repairs">> & {
  /** StreamServer.admitOther, told which camera (by number) the viewer watches. */
  admitOther(kind: string, address: string, name: string, camera: number): { id: number } | { refused: string };
};

/**
 * One server viewer as a row of the page's table; null for browsers (the view lists its
 * own). `cameras`: the cameras' names, index = number, for the row's camera column.
 */
export function viewerRow(v: ViewerSummary, cameras: readonly string[]): ViewerInfo | null {
  if (v.kind !== "udp" && v.kind !== "classic") return null;
  const camera = v.camera ?? 0;
  return {
    id: v.kind === "udp" ? v.id.toString(16).padStart(8, "0") : `classic-${v.id}`,
    kind: v.kind,
    address: v.address,
    port: v.udpPort ?? 0,
    name: v.name,
    // A number the list does not have still shows, as the number, rather than as another camera.
    camera: cameras[camera] ?? String(camera),
    joinedAt: v.joinedAt,
    framesSent: v.framesSent,
    framesReceived: v.framesReceived,
    // The server keeps lost plus incomplete as one figure: the viewer's framesDropped.
    framesMissing: null,
    framesIncomplete: null,
    framesDropped: v.framesLost,
    framesRecorded: null,
    fps: v.fps,
    latencyP50Ms: v.latencyP50Ms,
    bytesSent: null,
    picture: v.picture ?? null,
    rateBytesPerS: v.rateBytesPerS ?? null,
    framesSkipped: v.framesSkipped ?? null,
    repair: v.repair ? repairRow(v.repair) : null,
    transport: v.transport ?? null,
    noDatagrams: v.noDatagrams ?? null,
  };
}

/** A repairing viewer's repair for the status pages: its counts in ms and the server's resends. */
function repairRow(r: ViewerRepairSummary): ViewerRepair {
  const c = r.reported;
  const ms = (us: number | undefined) => (us ? us / 1000 : null);
  return {
    datagramsRepairedByFec: c?.datagramsRepairedByFec ?? null, datagramsRepairedByNack: c?.datagramsRepairedByNack ?? null,
    datagramsUnrepaired: c?.datagramsUnrepaired ?? null, framesRecordOnly: c?.framesRecordOnly ?? null,
    delayP50Ms: ms(c?.repairDelayP50Us), delayP99Ms: ms(c?.repairDelayP99Us),
    datagramsResent: r.sent.datagramsResent, bytesResent: r.sent.bytesResent, paritiesSent: r.sent.paritiesSent,
  };
}

/**
 * The state provider for HttpView: the cameras, viewers, the server's counters and where
 * it publishes. `sources` is asked on every call, so each camera's availability and frame
 * count are those of the moment; its order is the cameras' numbers and must not change.
 */
export function serverState(server: ViewedServer, sources: () => CameraSourceInfo[], publish: () => PublishTargetInfo[] = () => []): () => ServerState {
  return () => {
    const s = server.stats;
    const cameras = sources();
    const names = cameras.map((c) => c.name);
    return {
      sources: cameras,
      viewers: server.viewers().flatMap((v) => viewerRow(v, names) ?? []),
      counters: {
        framesCaptured: cameras.reduce((n, c) => n + c.framesCaptured, 0),
        framesSent: s.framesBroadcast,
        bytesSent: null,
        drops: { datagramsDropped: s.datagramsDropped, datagramsSuperseded: s.datagramsSuperseded, framesNotSent: s.framesNotSent, framesSkipped: s.framesSkipped, tcpFramesSkipped: s.tcpFramesSkipped },
        ...(server.repairs && { repair: { datagramsResent: s.repairDatagramsResent, bytesResent: s.repairBytesResent, requestsDropped: s.repairRequestsDropped, goneSent: s.repairGoneSent } }),
      },
      publish: publish(),
    };
  };
}

/** Browser readers take places under --max-clients; the server writes their join and leave lines. */
export function browserAdmission(server: ViewedServer): AdmissionHook {
  const ids = new Map<string, number>();
  return {
    admit(r) {
      const verdict = server.admitOther("browser", r.address, r.name, r.camera);
      if ("refused" in verdict) return { ok: false, reason: verdict.refused };
      ids.set(r.id, verdict.id);
      return { ok: true };
    },
    left(id, reason, totals) {
      const serverId = ids.get(id);
      if (serverId === undefined) return;
      ids.delete(id);
      server.updateOther(serverId, { framesSent: totals.framesSent + totals.framesSkipped, framesReceived: totals.framesSent, framesLost: totals.framesSkipped, picture: totals.picture ?? null });
      server.leaveOther(serverId, reason);
    },
  };
}

/**
 * The browser view's smaller pictures: each camera's --layers ladder, the source's size
 * first, scaled by a layer encoder of the camera's own at its JPEG quality. Unlike the
 * UDP stream's, the ladder stays with a token: the browser view is plain HTTP, its
 * frames are never sealed. A StartError when the sizes asked for cannot be.
 */
export function browserLayers(flag: LayersFlag, cameras: readonly (Size & { quality?: number })[], scale?: ScaleFunction): ReaderLayers {
  let sizes: Size[][];
  try {
    sizes = cameras.map((c) => layerSizes(flag, c));
  } catch (e) {
    if (e instanceof LayersError) throw new StartError(e.message);
    throw e;
  }
  return { sizes, scaler: (camera, deliver) => new LayerEncoder(deliver, { quality: cameras[camera]?.quality, scale }) };
}
