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
  /** Frames handed to it (classic: pictures sent, resends included). */
  framesSent: number;
  /** Its own count: a lancam viewer's last report, a classroom viewer's answers; null while unknown. */
  framesReceived: number | null;
  /** Frames it never completed (lost plus incomplete), from its last report; null while unknown. */
  framesLost: number | null;
  latencyP50Ms: number | null;
  /** Frames it received over its last second; null while unknown. */
  fps: number | null;
}
