import { expect, test } from "bun:test";
import { Capacity } from "../lib/send/capacity.ts";
import { SessionTable } from "../lib/send/sessions.ts";

const peer = (n: number) => ({ address: "127.0.0.1", tcpPort: 40000 + n, udpPort: 50000 + n, name: `v${n}`, resume: new Uint8Array(16).fill(n) });

test("capacity admits up to maxClients, then refuses as full; a leave frees a place", () => {
  const t = new SessionTable({ timeoutMs: 5000 });
  const places = new Capacity({ maxClients: 2 });
  const admit = (n: number) => {
    if (places.check(peer(n).address)) return { ok: false as const, reason: "full" as const };
    const r = t.admit(peer(n), 0);
    if (r.ok) places.add(`udp:${r.session.id}`, r.session.address);
    return r;
  };
  const a = admit(1);
  const b = admit(2);
  expect(a.ok && b.ok).toBe(true);
  expect(admit(3)).toEqual({ ok: false, reason: "full" });
  if (!a.ok) throw new Error("unreachable");
  expect(t.remove(a.session.id)?.udpPort).toBe(50001);
  places.remove(`udp:${a.session.id}`);
  expect(t.remove(a.session.id)).toBeUndefined();
  expect(admit(3).ok).toBe(true);
});

test("ids are non-zero and unique even when the random source repeats", () => {
  const draws = [0, 7, 7, 7, 9];
  const t = new SessionTable({ timeoutMs: 5000, randomId: () => draws.shift() ?? 11 });
  const ids = [1, 2, 3].map((n) => {
    const r = t.admit(peer(n), 0);
    return r.ok ? r.session.id : -1;
  });
  expect(ids).toEqual([7, 9, 11]);
});

test("a session silent for longer than the timeout expires; hearing from it keeps it", () => {
  const t = new SessionTable({ timeoutMs: 5000 });
  const a = t.admit(peer(1), 0);
  const b = t.admit(peer(2), 0);
  if (!a.ok || !b.ok) throw new Error("unreachable");
  t.heard(a.session.id, 4000);
  expect(t.expired(5000)).toEqual([]);
  expect(t.expired(5001).map((s) => s.id)).toEqual([b.session.id]);
  expect(t.expired(9001).map((s) => s.id).sort()).toEqual([a.session.id, b.session.id].sort());
});

test("a second session to the same address and UDP port is refused as a duplicate", () => {
  const t = new SessionTable({ timeoutMs: 5000 });
  expect(t.admit(peer(1), 0).ok).toBe(true);
  expect(t.admit({ ...peer(2), udpPort: peer(1).udpPort }, 0)).toEqual({ ok: false, reason: "duplicate" });
  expect(t.admit({ ...peer(1), address: "127.0.0.2" }, 0).ok).toBe(true);
});
