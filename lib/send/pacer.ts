/** Where one viewer's datagrams go. */
export interface Target {
  port: number;
  address: string;
}

interface Queue<K> {
  key: K;
  target: Target;
  datagrams: Uint8Array[];
  next: number;
  startMs: number;
  spreadMs: number;
}

/** Hands `datagrams[from..to)` to the socket for one viewer; returns how many it took. */
export type SendFn<K> = (key: K, target: Target, datagrams: Uint8Array[], from: number, to: number) => number;

/**
 * Spreads each frame's datagrams over a time window instead of one burst: a
 * 720p frame sent at once overflows a receiver's default socket buffer and the
 * kernel drops the tail silently. Datagram i of n is due at start + spread*i/n.
 * A newer frame for the same viewer replaces what is left of the older one, so a
 * viewer never accumulates a backlog. Pure bookkeeping: the caller owns the
 * socket and the timer.
 */
export class Pacer<K> {
  readonly #queues = new Map<K, Queue<K>>();

  /** Queues a frame's datagrams for one viewer; returns how many older ones it superseded. */
  enqueue(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, spreadMs: number): number {
    const old = this.#queues.get(key);
    const superseded = old ? old.datagrams.length - old.next : 0;
    this.#queues.set(key, { key, target, datagrams, next: 0, startMs: nowMs, spreadMs: Math.max(0, spreadMs) });
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
   * Sends, viewer by viewer, every datagram due by `nowMs`. What a viewer's send
   * did not take (the socket's buffer was full, or it failed) stays queued for the
   * next call, unless a newer frame replaces it first; other viewers are not held up.
   */
  due(nowMs: number, send: SendFn<K>): { due: number; sent: number } {
    let due = 0;
    let sent = 0;
    for (const [key, q] of this.#queues) {
      const n = q.datagrams.length;
      const elapsed = nowMs - q.startMs;
      const upTo = q.spreadMs <= 0 || elapsed >= q.spreadMs ? n : Math.min(n, Math.floor((elapsed / q.spreadMs) * n) + 1);
      if (upTo > q.next) {
        due += upTo - q.next;
        const took = Math.max(0, Math.min(upTo - q.next, send(key, q.target, q.datagrams, q.next, upTo)));
        q.next += took;
        sent += took;
      }
      if (q.next >= n) this.#queues.delete(key);
    }
    return { due, sent };
  }
}
