/** Where one viewer's datagrams go. */
export interface Target {
  port: number;
  address: string;
}

interface Queue {
  target: Target;
  datagrams: Uint8Array[];
  next: number;
  startMs: number;
  spreadMs: number;
}

/**
 * Spreads each frame's datagrams over a time window instead of one burst: a
 * 720p frame sent at once overflows a receiver's default socket buffer and the
 * kernel drops the tail silently. Datagram i of n is due at start + spread*i/n.
 * A newer frame for the same viewer replaces what is left of the older one, so a
 * viewer never accumulates a backlog. Pure bookkeeping: the caller owns the
 * socket and the timer.
 */
export class Pacer<K> {
  readonly #queues = new Map<K, Queue>();

  /** Queues a frame's datagrams for one viewer; returns how many older ones it superseded. */
  enqueue(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, spreadMs: number): number {
    const old = this.#queues.get(key);
    const superseded = old ? old.datagrams.length - old.next : 0;
    this.#queues.set(key, { target, datagrams, next: 0, startMs: nowMs, spreadMs: Math.max(0, spreadMs) });
    return superseded;
  }

  /** Forgets a viewer's queue (it left). */
  remove(key: K): void {
    this.#queues.delete(key);
  }

  /** True when nothing is waiting. */
  get idle(): boolean {
    return this.#queues.size === 0;
  }

  /**
   * Appends every datagram due by `nowMs` to `out` as sendMany wants them
   * (`data, port, address, ...`), interleaving viewers; returns how many.
   */
  due(nowMs: number, out: (Uint8Array | number | string)[]): number {
    let count = 0;
    for (const [key, q] of this.#queues) {
      const n = q.datagrams.length;
      const elapsed = nowMs - q.startMs;
      const upTo = q.spreadMs <= 0 || elapsed >= q.spreadMs ? n : Math.min(n, Math.floor((elapsed / q.spreadMs) * n) + 1);
      for (; q.next < upTo; q.next++) {
        out.push(q.datagrams[q.next]!, q.target.port, q.target.address);
        count++;
      }
      if (q.next >= n) this.#queues.delete(key);
    }
    return count;
  }
}
