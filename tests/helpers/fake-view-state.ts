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
      source: { description: "test", width: o.width, height: o.height, fps: o.fps },
      viewers: [{
        id: "0badf00d", kind: "udp", address: "10.77.0.5", port: 8888, name: "lab-3", joinedAt,
        framesSent: received + 3, framesReceived: received, framesMissing: 2, framesIncomplete: 1, framesDropped: 3,
        framesRecorded: received, fps: null, latencyP50Ms: o.latencyP50Ms, bytesSent: null,
      }],
      counters: { framesCaptured: 0, framesSent: received, bytesSent: null, drops: { datagramsDropped: 4 } },
    };
  };
}
