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
  /** The queue each datagram of the last `due()` batch came from, in order. */
  readonly #lastBatch: Queue<K>[] = [];

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
   * Appends every datagram due by `nowMs` to `out` as sendMany wants them
   * (`data, port, address, ...`), interleaving viewers; returns how many.
   */
  due(nowMs: number, out: (Uint8Array | number | string)[]): number {
    this.#lastBatch.length = 0;
    for (const q of this.#queues.values()) {
      const n = q.datagrams.length;
      const elapsed = nowMs - q.startMs;
      const upTo = q.spreadMs <= 0 || elapsed >= q.spreadMs ? n : Math.min(n, Math.floor((elapsed / q.spreadMs) * n) + 1);
      for (; q.next < upTo; q.next++) {
        out.push(q.datagrams[q.next]!, q.target.port, q.target.address);
        this.#lastBatch.push(q);
      }
    }
    this.#dropFinished();
    return this.#lastBatch.length;
  }

  /**
   * The socket took only the first `sent` datagrams of the last batch (its send
   * buffer was full): the rest go back to their queues, to be sent on the next
   * call, unless a newer frame has replaced them by then.
   */
  unsent(sent: number): number {
    const batch = this.#lastBatch;
    let returned = 0;
    for (let i = Math.max(sent, 0); i < batch.length; i++) {
      const q = batch[i]!;
      q.next--;
      returned++;
      if (!this.#queues.has(q.key)) this.#queues.set(q.key, q);
    }
    batch.length = Math.min(batch.length, Math.max(sent, 0));
    return returned;
  }

  #dropFinished(): void {
    for (const [key, q] of this.#queues) if (q.next >= q.datagrams.length) this.#queues.delete(key);
  }
}
