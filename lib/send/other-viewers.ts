import type { ViewerSummary } from "./viewer-summary.ts";

/** What a viewer served elsewhere reports about itself (see Admission.updateOther). */
export type OtherCounters = Pick<ViewerSummary, "framesSent" | "framesReceived" | "framesLost" | "latencyP50Ms" | "fps">;

/** A viewer served by another part of the server (a browser reader): it has no connection here, only a place. */
export interface OtherViewer {
  readonly id: number;
  readonly kind: string;
  readonly address: string;
  readonly name: string;
  readonly joinedAt: number;
  counters: OtherCounters;
}

/** Kinds admitOther may not take: they name this machine's own viewers. */
const OWN_KINDS = new Set(["udp", "classic"]);

/** Throws unless `kind` can name viewers served elsewhere. */
export function checkOtherKind(kind: string): void {
  if (OWN_KINDS.has(kind) || !/^[a-z][a-z0-9-]{0,31}$/.test(kind)) {
    throw new RangeError(`viewer kind must be lower-case letters, digits and -, not udp or classic, got ${JSON.stringify(kind)}`);
  }
}

/** The viewers served elsewhere, by id; their places are counted in Capacity under "other:ID". */
export class OtherViewers {
  readonly #viewers = new Map<number, OtherViewer>();

  get size(): number {
    return this.#viewers.size;
  }

  has(id: number): boolean {
    return this.#viewers.has(id);
  }

  add(id: number, kind: string, address: string, name: string, now: number): void {
    const counters: OtherCounters = { framesSent: 0, framesReceived: null, framesLost: null, latencyP50Ms: null, fps: null };
    this.#viewers.set(id, { id, kind, address, name, joinedAt: now, counters });
  }

  /** Merges what it reports; false when `id` is not one. */
  update(id: number, counters: Partial<OtherCounters>): boolean {
    const v = this.#viewers.get(id);
    if (!v) return false;
    v.counters = { ...v.counters, ...counters };
    return true;
  }

  /** Forgets it; returns what it was, or undefined for an unknown id. */
  remove(id: number): OtherViewer | undefined {
    const v = this.#viewers.get(id);
    this.#viewers.delete(id);
    return v;
  }

  values(): IterableIterator<OtherViewer> {
    return this.#viewers.values();
  }
}

/** The Capacity key of a viewer served elsewhere. */
export const otherKey = (id: number) => `other:${id}`;
