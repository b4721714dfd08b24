/** The figures the status line shows; the receiver's stats snapshot has this shape. */
export interface StatusFigures {
  fps: number;
  mbps: number;
  lossPercent: number;
  latencyP50Ms: number | null;
}

/** The picture the server sends: its size, and (once the server said) its layer and rate estimate. */
export function formatPicture(full: { width: number; height: number }, layer: { layer: number; width: number; height: number; rateBytesPerS: number } | null): string {
  if (!layer) return `${full.width}x${full.height}`;
  const rate = layer.rateBytesPerS === 0 ? "not limited" : `${((layer.rateBytesPerS * 8) / 1e6).toFixed(1)} Mbit/s`;
  return `${layer.width}x${layer.height} (layer ${layer.layer}, ${rate})`;
}

/** The once-a-second line a viewer shows on a terminal. */
export function formatStatus(s: StatusFigures, extra: { size?: string; recording?: string; transport?: string } = {}): string {
  const lat = s.latencyP50Ms === null ? "-" : `${s.latencyP50Ms.toFixed(1)} ms`;
  const parts = [
    `${s.fps.toFixed(1)} fps`,
    `${s.mbps.toFixed(1)} Mbit/s`,
    `loss ${s.lossPercent.toFixed(1)}%`,
    `latency p50 ${lat}`,
  ];
  if (extra.size) parts.unshift(extra.size);
  if (extra.transport) parts.push(`via ${extra.transport}`);
  if (extra.recording) parts.push(`rec ${extra.recording}`);
  return parts.join("  ");
}

/** Rewrites one terminal line in place; does nothing when stderr is not a terminal. */
export class StatusLine implements Disposable {
  #shown = false;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}
  get enabled(): boolean {
    return Boolean(this.out.isTTY);
  }
  show(text: string): void {
    if (!this.enabled) return;
    const width = this.out.columns || 100;
    this.out.write(`\r\x1b[2K${text.slice(0, width - 1)}`);
    this.#shown = true;
  }
  /** Moves off the status line before an ordinary log line or exit. */
  clear(): void {
    if (this.#shown) this.out.write("\r\x1b[2K");
    this.#shown = false;
  }
  [Symbol.dispose](): void {
    this.clear();
  }
}
