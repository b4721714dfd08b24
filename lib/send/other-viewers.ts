import type { AdmissionAction, OtherAdmission } from "./admission-types.ts";
import { noPlaceReason, type Capacity } from "./capacity.ts";
import type { OtherCounters } from "./viewer-summary.ts";

export type { OtherCounters } from "./viewer-summary.ts";


/** A viewer served by another part of the server (a browser reader): it has no connection here, only a place. */
export interface OtherViewer {
  readonly id: number;
  readonly kind: string;
  readonly address: string;
  readonly name: string;
  readonly joinedAt: number;
  /** The camera it watches (0 on a server with one). */
  readonly camera: number;
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

/**
 * The viewers served elsewhere (browser readers), by id: they take their places from
 * the same Capacity as every other kind, under "other:ID".
 */
export class OtherViewers {
  readonly #viewers = new Map<number, OtherViewer>();
  readonly #capacity: Capacity;

  constructor(capacity: Capacity) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#viewers.size;
  }

  has(id: number): boolean {
    return this.#viewers.has(id);
  }

  /** A place for one more, unless Capacity has none or the server is `closing` (its reason); logged either way. */
  admit(id: number, kind: string, address: string, name: string, now: number, closing: string | null, camera = 0): OtherAdmission {
    checkOtherKind(kind);
    if (this.#viewers.has(id)) throw new Error(`viewer id ${id} is in use`);
    const actions: AdmissionAction[] = [];
    const noPlace = closing === null ? this.#capacity.check(address) : null;
    if (closing !== null || noPlace) {
      const reason = noPlace ? noPlaceReason(noPlace) : closing!;
      actions.push({ kind: "log", level: "warn", message: "client refused", fields: { client: address, kind, name: name || undefined, reason, max: noPlace?.max ?? this.#capacity.maxClients } });
      return { refused: noPlace ? noPlace.text : closing, actions };
    }
    const counters: OtherCounters = { framesSent: 0, framesReceived: null, framesLost: null, latencyP50Ms: null, fps: null };
    this.#viewers.set(id, { id, kind, address, name, joinedAt: now, camera, counters });
    this.#capacity.add(otherKey(id), address);
    actions.push({ kind: "log", level: "info", message: "client joined", fields: { client: address, kind, name: name || undefined, clients: this.#capacity.size } });
    return { refused: null, actions };
  }

  /** Merges what it reports; false when `id` is not one. */
  update(id: number, counters: Partial<OtherCounters>): boolean {
    const v = this.#viewers.get(id);
    if (!v) return false;
    v.counters = { ...v.counters, ...counters };
    return true;
  }

  /** It ended: its place is freed and its leave logged with `reason`. Unknown ids are ignored. */
  leave(id: number, reason: string, now: number): AdmissionAction[] {
    const v = this.#viewers.get(id);
    if (!v) return [];
    this.#viewers.delete(id);
    this.#capacity.remove(otherKey(id));
    const { framesSent, framesReceived, framesLost, picture } = v.counters;
    return [{
      kind: "log", level: "info", message: "client left",
      fields: {
        client: v.address, kind: v.kind, name: v.name || undefined, reason, seconds: ((now - v.joinedAt) / 1000).toFixed(1),
        framesSent, framesReceived: framesReceived ?? undefined, framesLost: framesLost ?? undefined,
        // A browser reader moved down the --layers ladder: the picture it was sent last.
        picture: picture ? `${picture.width}x${picture.height}` : undefined, clients: this.#capacity.size,
      },
    }];
  }

  values(): IterableIterator<OtherViewer> {
    return this.#viewers.values();
  }
}

/** The Capacity key of a viewer served elsewhere. */
const otherKey = (id: number) => `other:${id}`;
