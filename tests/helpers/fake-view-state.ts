import type { ServerState } from "../../lib/http/viewer-info.ts";

/**
 * The server's side as the browser view sees it: one UDP viewer (lab-3 at 10.77.0.5:8888)
 * receiving `fps` frames a second since the call, 3 of them lost, with the given latency.
 */
export function fakeServerState(o: { width: number; height: number; fps: number; latencyP50Ms: number }): () => ServerState {
  const joinedAt = Date.now();
  return () => {
    const received = Math.floor(((Date.now() - joinedAt) / 1000) * o.fps);
    return {
      sources: [{ name: "0", description: "test", width: o.width, height: o.height, fps: o.fps, available: true, framesCaptured: 0 }],
      viewers: [{
        id: "0badf00d", kind: "udp", address: "10.77.0.5", port: 8888, name: "lab-3", camera: "0", joinedAt,
        framesSent: received + 3, framesReceived: received, framesMissing: 2, framesIncomplete: 1, framesDropped: 3,
        framesRecorded: received, fps: null, latencyP50Ms: o.latencyP50Ms, bytesSent: null,
      }],
      counters: { framesCaptured: 0, framesSent: received, bytesSent: null, drops: { datagramsDropped: 4 } },
    };
  };
}

/**
 * A server with several cameras as the browser view sees it: each camera named and sized
 * as given, available until told otherwise, and one UDP viewer (lab-3) watching camera 0.
 */
export function fakeCamerasState(cameras: { name: string; width: number; height: number }[], fps: number): { state: () => ServerState; setAvailable: (camera: number, available: boolean) => void } {
  const one = fakeServerState({ width: cameras[0]!.width, height: cameras[0]!.height, fps, latencyP50Ms: 12.5 });
  const available = cameras.map(() => true);
  return {
    state: () => {
      const s = one();
      return {
        ...s,
        sources: cameras.map((c, i) => ({ ...c, description: `test:${c.name}`, fps, available: available[i]!, framesCaptured: 0 })),
        viewers: s.viewers.map((v) => ({ ...v, camera: cameras[0]!.name })),
      };
    },
    setAvailable: (camera, a) => void (available[camera] = a),
  };
}
