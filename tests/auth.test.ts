// Token authentication as the two state machines run it, wired together in memory
// through real ControlChannels (so tags are made and checked as on the wire), with a
// fake clock and nonces chosen by the test. Right token, wrong token on either side,
// replay, reflection and the lockout of repeated failures.
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { formatLine } from "../lib/log/format.ts";
import { ControlChannel } from "../lib/net/control-channel.ts";
import { ControlMac } from "../lib/net/control-mac.ts";
import { unwrapStreamKey, wrapStreamKey } from "../lib/net/frame-cipher.ts";
import { clientProof, deriveSessionKeys, proofMatches, tokenKey, type SessionKeys, type TokenKey } from "../lib/net/session-keys.ts";
import { ConnectError, Handshake, type HandshakeAction } from "../lib/receive/handshake.ts";
import { Admission, type AdmissionAction, type AdmissionOptions } from "../lib/send/admission.ts";
import { AuthLockout } from "../lib/send/auth-lockout.ts";
import {
  CAP_CAMERA, CAP_DECRYPT, CAP_MULTICAST, CAP_MULTICAST_LAYERS, CAP_SOURCE_STATUS, CAP_TCP_DELIVERY, CAP_PATH_REPORTS, CAP_RESUME, CAP_TOKEN_AUTH, CAP_VERIFY, PROTOCOL_VERSION, RefuseReason, WELCOME_ENCRYPTED,
  type Challenge, type ControlMessage, type Hello, type Response, type Welcome,
} from "../lib/wire/control.ts";

// scrypt is slow on purpose: stretch each token once for the whole file.
const RIGHT = tokenKey("correct horse battery staple");
const WRONG = tokenKey("correct horse battery stapler");
const STREAM = { width: 320, height: 240, fpsMillihertz: 30_000, fragmentSize: 1352, udpSourcePort: 40_000 };
const HERE = "192.168.1.20";

/** Nonces 0x01.., 0x02.., ...: distinct, and visible in a failure. */
function nonces(first: number): () => Uint8Array {
  let n = first;
  return () => new Uint8Array(32).fill(n++ & 0xff);
}

function server(token: TokenKey | null, over: Partial<AdmissionOptions> = {}): Admission {
  let id = 0x100;
  return new Admission({
    maxClients: 8, maxPending: 64, heartbeatMs: 1000, timeoutMs: 5000, stream: STREAM, wallClockUs: (now) => 1.7e15 + now * 1000,
    randomId: () => id++, randomSecret: () => new Uint8Array(16).fill(0x5e), auth: token ? { token, nonce: nonces(0x10) } : null, ...over,
  });
}

function viewer(token: TokenKey | null, first = 0x80): Handshake {
  const report = () => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }) as const;
  return new Handshake({
    server: "srv:9999", udpPort: 5000, name: "v", report, totals: () => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 }),
    wallClockMicros: () => 1.7e15, auth: token ? { token, nonce: nonces(first) } : null,
  });
}

/** What one side did, for the assertions. */
interface Seen {
  serverActions: AdmissionAction[];
  clientActions: HandshakeAction[];
  /** Messages the server's channel dropped for a bad tag, and the client's. */
  serverForged: number;
  clientForged: number;
  serverChannel: ControlChannel;
  clientChannel: ControlChannel;
  /** Delivers what either side has written since. */
  flush: (now: number) => void;
}

/**
 * One connection between a viewer and a server: every byte either side writes is read
 * by the other through a ControlChannel, and every message checked as the socket
 * wrappers check it. Runs until neither side has anything more to say.
 */
function connect(m: Admission, h: Handshake, conn = 1, now = 0): Seen {
  const toServer: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const serverChannel = new ControlChannel({ write: (b) => (toClient.push(b.slice()), b.length), end: () => {} });
  const clientChannel = new ControlChannel({ write: (b) => (toServer.push(b.slice()), b.length), end: () => {} });
  const seen: Seen = { serverActions: [], clientActions: [], serverForged: 0, clientForged: 0, serverChannel, clientChannel, flush: () => {} };
  const onServer = (actions: AdmissionAction[]) => {
    for (const a of actions) {
      seen.serverActions.push(a);
      if (a.kind === "send") serverChannel.send(a.msg);
      if (a.kind === "secure") serverChannel.secure(new ControlMac({ send: a.keys.serverMac, receive: a.keys.clientMac }));
    }
  };
  const onClient = (actions: HandshakeAction[]) => {
    for (const a of actions) {
      seen.clientActions.push(a);
      if (a.type === "send") clientChannel.send(a.msg);
      if (a.type === "secure") clientChannel.secure(new ControlMac({ send: a.keys.clientMac, receive: a.keys.serverMac }));
    }
  };
  expect(h.push({ type: "start" }, now)).toEqual([{ type: "connect" }]);
  onServer(m.connected(conn, { address: HERE, port: 50_000 + conn }, now));
  onClient(h.push({ type: "connected" }, now));
  seen.flush = (t) => pump(m, h, conn, t, toServer, toClient, seen, onServer, onClient);
  seen.flush(now);
  return seen;
}

function pump(
  m: Admission, h: Handshake, conn: number, now: number, toServer: Uint8Array[], toClient: Uint8Array[], seen: Seen,
  onServer: (a: AdmissionAction[]) => void, onClient: (a: HandshakeAction[]) => void,
): void {
  for (let round = 0; round < 20 && (toServer.length > 0 || toClient.length > 0); round++) {
    for (const bytes of toServer.splice(0)) {
      for (const msg of seen.serverChannel.receive(bytes)) {
        if (!seen.serverChannel.authentic(msg)) seen.serverForged++;
        else onServer(m.received(conn, msg, now));
      }
    }
    for (const bytes of toClient.splice(0)) {
      for (const msg of seen.clientChannel.receive(bytes)) {
        if (!seen.clientChannel.authentic(msg)) {
          seen.clientForged++;
          onClient(h.push({ type: "forged" }, now));
        } else onClient(h.push({ type: "message", msg }, now));
      }
    }
  }
}

/** Log actions as the server's log prints them (Logger.security writes a WARN line), without the timestamp. */
const logLines = (actions: AdmissionAction[]) =>
  actions.flatMap((a) => (a.kind === "log" ? [formatLine(new Date(0), (a.level === "security" ? "WARN" : a.level.toUpperCase()) as "INFO", "server", a.message, a.fields).replace(/^\S+ /, "")] : []));
/** The messages of the log actions that are security events. */
const securityEvents = (actions: AdmissionAction[]) => actions.flatMap((a) => (a.kind === "log" && a.level === "security" ? [a.message] : []));
const sent = (actions: AdmissionAction[]) => actions.flatMap((a) => (a.kind === "send" ? [a.msg] : []));
const finished = (actions: HandshakeAction[]) => actions.find((a): a is Extract<HandshakeAction, { type: "finished" }> => a.type === "finished");

describe("token handshake, both machines", () => {
  test("the right token: challenge, response, a tagged welcome announcing encryption; the token itself never crosses", () => {
    const m = server(RIGHT);
    const h = viewer(RIGHT);
    const seen = connect(m, h);
    const types = sent(seen.serverActions).map((x) => x.type);
    expect(types).toEqual(["challenge", "welcome"]);
    const receive = seen.clientActions.find((a) => a.type === "receive");
    expect(receive).toBeDefined();
    const welcome = (receive as { welcome: Welcome }).welcome;
    expect(welcome.flags & WELCOME_ENCRYPTED).toBe(WELCOME_ENCRYPTED);
    expect(welcome.tag).toHaveLength(16);
    expect(h.state).toBe("session");
    expect(m.sessionCount).toBe(1);
    expect(logLines(seen.serverActions)).toEqual(["INFO [server] client joined client=192.168.1.20:50001 udp=5000 session=00000100 name=v auth=token clients=1"]);
    expect(seen.serverForged + seen.clientForged).toBe(0);
    expect(seen.serverChannel.secured && seen.clientChannel.secured).toBe(true);
    // Capabilities: token auth, decryption, resume, joining a multicast group, frames over TCP, and naming its camera.
    const hello = seen.clientActions.find((a) => a.type === "send")! as { msg: Hello };
    expect(hello.msg.capabilities).toBe(CAP_TOKEN_AUTH | CAP_DECRYPT | CAP_RESUME | CAP_VERIFY | CAP_PATH_REPORTS | CAP_MULTICAST | CAP_MULTICAST_LAYERS | CAP_TCP_DELIVERY | CAP_SOURCE_STATUS | CAP_CAMERA);
  });

  test("a wrong token on the viewer: refused with reason 4 (final), logged refused reason=auth; the viewer says so", () => {
    const m = server(RIGHT);
    const h = viewer(WRONG);
    const seen = connect(m, h);
    expect(sent(seen.serverActions).map((x) => x.type)).toEqual(["challenge", "refuse"]);
    expect(sent(seen.serverActions)[1]).toEqual({ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token" });
    expect(logLines(seen.serverActions)).toEqual(['WARN [server] client refused reason=auth client=192.168.1.20:50001 detail="wrong token" udp=5000 failures=1']);
    const fin = finished(seen.clientActions)!;
    expect(fin.error).toBeInstanceOf(ConnectError);
    expect(fin.error!.isFinal).toBe(true);
    expect(fin.error!.message).toBe("server srv:9999 refused the session: wrong token (the viewer's token is not the server's)");
    expect(m.sessionCount).toBe(0);
    expect(m.authCounters.authFailures).toBe(1);
  });

  test("a server with another token cannot welcome the viewer: its tag fails, and the viewer says the server did not prove the token", () => {
    // A server that does not check the proof (or relays to one that does not know the
    // token): it challenges and welcomes, tagging with keys from its own token.
    const h = viewer(RIGHT);
    h.push({ type: "start" }, 0);
    const hello = (h.push({ type: "connected" }, 0)[0] as { msg: Hello }).msg;
    const challenge: Challenge = { type: "challenge", serverNonce: new Uint8Array(32).fill(0x33) };
    const answer = h.push({ type: "message", msg: challenge }, 0);
    const response = (answer[0] as { msg: Response }).msg;
    const impostor = deriveSessionKeys(WRONG, { hello, challenge, clientNonce: response.clientNonce });
    const bytes = new ControlMac({ send: impostor.serverMac, receive: impostor.clientMac }).seal(welcomeMsg());
    const clientChannel = new ControlChannel({ write: (b) => b.length, end: () => {} });
    const keys = (answer[1] as { keys: SessionKeys }).keys;
    clientChannel.secure(new ControlMac({ send: keys.clientMac, receive: keys.serverMac }));
    const [msg] = clientChannel.receive(bytes);
    expect(clientChannel.authentic(msg!)).toBe(false);
    const fin = finished(h.push({ type: "forged" }, 0))!;
    expect(fin.error!.isFinal).toBe(true);
    expect(fin.error!.message).toBe("server srv:9999 could not prove it holds the token (it has another token, or it is not the server you meant)");
  });

  test("a server without a token that welcomes a viewer with one: the viewer refuses to watch it", () => {
    const seen = connect(server(null), viewer(RIGHT));
    const fin = finished(seen.clientActions)!;
    expect(fin.error!.isFinal).toBe(true);
    expect(fin.error!.message).toContain("does not ask for a token: anyone on the network can watch it");
  });

  test("a viewer without a token: refused at once by a server that needs one, no challenge spent", () => {
    const m = server(RIGHT);
    const seen = connect(m, viewer(null));
    expect(sent(seen.serverActions)).toEqual([
      { type: "refuse", reason: RefuseReason.AuthRequired, text: "this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)" },
    ]);
    expect(logLines(seen.serverActions)[0]).toBe('WARN [server] client refused reason=auth client=192.168.1.20:50001 detail="no token"');
    expect(finished(seen.clientActions)!.error!.isFinal).toBe(true);
    expect(m.authCounters.authFailures).toBe(0);
  });

  test("a viewer that can answer but not decrypt is refused", () => {
    const m = server(RIGHT);
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.received(1, { type: "hello", version: PROTOCOL_VERSION, udpPort: 5000, capabilities: CAP_TOKEN_AUTH, name: "" }, 0);
    expect(sent(out)).toEqual([{ type: "refuse", reason: RefuseReason.AuthRequired, text: "this server encrypts its frames and this viewer cannot decrypt them" }]);
  });

  test("replay: a hello and response recorded from a good handshake are refused on a new connection (a new server nonce)", () => {
    const m = server(RIGHT);
    const seen = connect(m, viewer(RIGHT), 1);
    const recorded = seen.clientActions.flatMap((a) => (a.type === "send" ? [a.msg] : []));
    expect(recorded.map((x) => x.type)).toEqual(["hello", "response"]);
    m.connected(2, { address: HERE, port: 50_002 }, 10);
    const challenge = sent(m.received(2, { ...recorded[0]!, tag: undefined } as Hello, 10))[0] as Challenge;
    expect(challenge.type).toBe("challenge");
    const out = m.received(2, recorded[1]!, 10);
    expect(sent(out)).toEqual([{ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token" }]);
    expect(logLines(out)[0]).toContain('refused reason=auth client=192.168.1.20:50002 detail="wrong token"');
    expect(m.sessionCount).toBe(1);
  });

  test("reflection: the server's own nonce as the client's, or a proof made with the server's key, is refused even with the right token", () => {
    const m = server(RIGHT);
    const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: 5000, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "" };
    // 1: the challenge's nonce sent back as the client nonce, the proof right for it.
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const c1 = sent(m.received(1, hello, 0))[0] as Challenge;
    const t1 = { hello, challenge: c1, clientNonce: c1.serverNonce };
    const keys1 = deriveSessionKeys(RIGHT, t1);
    const out1 = m.received(1, { type: "response", clientNonce: c1.serverNonce, proof: clientProof(keys1, t1) }, 0);
    expect(sent(out1)).toEqual([{ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token" }]);
    expect(logLines(out1)[0]).toContain('detail="reflected nonce"');
    // 2: a proof computed as the server computes its own tags (its key, its direction).
    m.connected(2, { address: HERE, port: 50_002 }, 0);
    const c2 = sent(m.received(2, hello, 0))[0] as Challenge;
    const t2 = { hello, challenge: c2, clientNonce: new Uint8Array(32).fill(0xc2) };
    const keys2 = deriveSessionKeys(RIGHT, t2);
    const serverSide = new Uint8Array(createHmac("sha256", keys2.serverMac).update("lancam-v1 client proof").update(c2.serverNonce).update(t2.clientNonce).digest());
    expect(proofMatches(keys2, t2, serverSide)).toBe(false);
    expect(sent(m.received(2, { type: "response", clientNonce: t2.clientNonce, proof: serverSide }, 0))[0]).toMatchObject({ type: "refuse" });
    // And the viewer: a welcome tagged with its own key (its messages bounced back) is not the server's.
    const h = viewer(RIGHT);
    h.push({ type: "start" }, 0);
    const vhello = (h.push({ type: "connected" }, 0)[0] as { msg: Hello }).msg;
    const ch: Challenge = { type: "challenge", serverNonce: new Uint8Array(32).fill(0x44) };
    const answer = h.push({ type: "message", msg: ch }, 0);
    const keys = (answer[1] as { keys: SessionKeys }).keys;
    const bounced = new ControlMac({ send: keys.clientMac, receive: keys.serverMac }).seal(welcomeMsg());
    const channel = new ControlChannel({ write: (b) => b.length, end: () => {} });
    channel.secure(new ControlMac({ send: keys.clientMac, receive: keys.serverMac }));
    expect(channel.authentic(channel.receive(bounced)[0]!)).toBe(false);
    expect(deriveSessionKeys(RIGHT, { hello: vhello, challenge: ch, clientNonce: (answer[0] as { msg: Response }).msg.clientNonce })).toEqual(keys);
  });

  test("the keys bind the hello as sent: a hello altered on the way (another UDP port) gives the two sides different keys", () => {
    const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: 5000, capabilities: 3, name: "" };
    const challenge: Challenge = { type: "challenge", serverNonce: new Uint8Array(32).fill(1) };
    const clientNonce = new Uint8Array(32).fill(2);
    const a = deriveSessionKeys(RIGHT, { hello, challenge, clientNonce });
    const b = deriveSessionKeys(RIGHT, { hello: { ...hello, udpPort: 5001 }, challenge, clientNonce });
    expect(Buffer.from(a.proof).equals(Buffer.from(b.proof))).toBe(false);
    const keys = Object.values(a).map((k) => Buffer.from(k).toString("hex"));
    expect(new Set(keys).size).toBe(4);
  });

  test("after the handshake: tagged heartbeats keep the session, a wrapped stream key arrives unwrapped, one bound to another id does not", () => {
    const m = server(RIGHT);
    const h = viewer(RIGHT);
    const seen = connect(m, h);
    const secure = seen.serverActions.find((a) => a.kind === "secure") as Extract<AdmissionAction, { kind: "secure" }>;
    const streamKey = new Uint8Array(32).fill(0x77);
    const nonce = new Uint8Array(12);
    nonce[11] = 1;
    seen.serverChannel.send({ type: "key", keyId: 3, nonce, wrapped: wrapStreamKey(secure.keys.wrap, nonce, 3, streamKey) });
    seen.flush(100);
    expect(seen.clientActions.at(-1)).toEqual({ type: "key", id: 3, key: streamKey });
    // The viewer's heartbeat and report (tagged by its channel) reach the server, which hears them.
    for (let t = 1000; t <= 9000; t += 1000) {
      for (const a of h.push({ type: "tick" }, t)) if (a.type === "send") seen.clientChannel.send(a.msg);
      for (const a of m.tick(t)) if (a.kind === "send") seen.serverChannel.send(a.msg);
      seen.flush(t);
    }
    expect(seen.serverForged + seen.clientForged).toBe(0);
    expect(m.sessionCount).toBe(1);
    expect(h.state).toBe("session");
    // A key wrapped for id 3 cannot be passed off as id 4.
    expect(unwrapStreamKey(secure.keys.wrap, nonce, 4, wrapStreamKey(secure.keys.wrap, nonce, 3, streamKey))).toBeNull();
    // Nor can a wrapped key that was altered: the viewer ends the session rather than use it.
    const bad = wrapStreamKey(secure.keys.wrap, nonce, 5, streamKey);
    bad[0]! ^= 1;
    seen.serverChannel.send({ type: "key", keyId: 5, nonce, wrapped: bad });
    seen.flush(9100);
    expect(seen.clientActions.slice(-2)).toMatchObject([{ type: "close" }, { type: "retry", cause: { reason: "protocol error", text: "a stream key that does not unwrap" } }]);
  });
});

function welcomeMsg(): Welcome {
  return { type: "welcome", sessionId: 1, ...STREAM, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_ENCRYPTED };
}

describe("lockout of repeated wrong tokens", () => {
  test("free failures, then a lockout doubling each time, logged; a locked address is refused before any challenge; the right token clears it", () => {
    const m = server(RIGHT, { auth: { token: RIGHT, nonce: nonces(0x10), lockout: { freeFailures: 2, baseMs: 1000, maxMs: 4000 } } });
    let conn = 0;
    const attempt = (token: TokenKey, now: number) => connect(m, viewer(token, 0x80 + conn), ++conn, now);
    expect(logLines(attempt(WRONG, 0).serverActions)).toHaveLength(1);
    expect(logLines(attempt(WRONG, 10).serverActions)).toHaveLength(1);
    const third = logLines(attempt(WRONG, 20).serverActions);
    expect(third).toEqual([
      'WARN [server] client refused reason=auth client=192.168.1.20:50003 detail="wrong token" udp=5000 failures=3',
      "WARN [server] auth lockout address=192.168.1.20 seconds=1 failures=3",
    ]);
    // Locked: even the right token is refused without a challenge until the lockout ends.
    const locked = attempt(RIGHT, 500);
    expect(sent(locked.serverActions)).toEqual([{ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token too often from 192.168.1.20: try again in 1 s" }]);
    expect(logLines(locked.serverActions)[0]).toContain('detail="locked out" retryInSec=1');
    // The viewer, whose token is right, waits the lockout out: it ends within its connect timeout.
    expect(finished(locked.clientActions)).toBeUndefined();
    expect(locked.clientActions.find((a) => a.type === "retry")).toMatchObject({ afterMs: 1000 });
    // Another address is not affected.
    const other = new Handshake({ server: "s", udpPort: 6000, report: () => { throw new Error("no"); }, totals: () => { throw new Error("no"); }, auth: { token: RIGHT, nonce: nonces(0x70) } });
    other.push({ type: "start" }, 600);
    const otherOut = m.connected(99, { address: "192.168.1.99", port: 1 }, 600);
    expect(otherOut).toEqual([]);
    const hello = (other.push({ type: "connected" }, 600)[0] as { msg: Hello }).msg;
    expect(sent(m.received(99, hello, 600))[0]!.type).toBe("challenge");
    // After it: the next failure locks for twice as long, then the cap.
    expect(logLines(attempt(WRONG, 1020).serverActions)[1]).toBe("WARN [server] auth lockout address=192.168.1.20 seconds=2 failures=4");
    expect(logLines(attempt(WRONG, 3021).serverActions)[1]).toBe("WARN [server] auth lockout address=192.168.1.20 seconds=4 failures=5");
    expect(logLines(attempt(WRONG, 7022).serverActions)[1]).toBe("WARN [server] auth lockout address=192.168.1.20 seconds=4 failures=6");
    // The right token, once allowed, is welcomed and clears the count.
    const ok = attempt(RIGHT, 11_023);
    expect(sent(ok.serverActions).map((x) => x.type)).toEqual(["challenge", "welcome"]);
    expect(logLines(attempt(WRONG, 11_030).serverActions)).toHaveLength(1);
  });

  test("the lockout table is bounded, never forgets a locked address to make room (it refuses the new one, counted), and forgets quiet ones", () => {
    const wide = { freeFailures: 1e9 };
    const l = new AuthLockout({ freeFailures: 0, baseMs: 1000, forgetMs: 60_000, maxAddresses: 100, network: wide, server: wide });
    for (let i = 0; i < 1000; i++) l.failed(`10.0.${i >> 8}.${i & 0xff}`, i);
    expect(l.size).toBe(100);
    // Every address it holds is still locked: the first 100 are kept, the 900 after them refused.
    expect(l.refusedEntries).toBe(900);
    expect(l.lockedFor("10.0.0.0", 999)).toBe(1);
    expect(l.lockedFor("10.0.0.99", 999)).toBe(1099 - 999);
    expect(l.lockedFor("10.0.3.231", 999)).toBe(0);
    // A new address is refused as if locked while there is no room to count its failures.
    expect(l.check("10.0.3.231", 999)).toEqual({ scope: "full", ms: 1000 });
    expect(l.check("10.0.0.1", 999)).toEqual({ scope: "address", ms: 2 });
    // Once locks have ended, an unlocked address makes room again.
    expect(l.check("10.0.3.231", 2000)).toBeNull();
    expect(l.failed("10.0.3.231", 2000)).toMatchObject({ failures: 1, lockedMs: 1000 });
    expect(l.size).toBe(100);
    // Quiet for longer than forgetMs: starts afresh (its next failure is the first again).
    expect(l.failed("10.0.0.50", 61_000)).toMatchObject({ failures: 1, lockedMs: 1000 });
    l.failed("10.0.0.50", 61_001);
    expect(l.failed("10.0.0.50", 200_000).failures).toBe(1);
  });

  test("the response must come within the hello deadline of the challenge", () => {
    const m = server(RIGHT, { helloTimeoutMs: 500 });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    m.received(1, { type: "hello", version: PROTOCOL_VERSION, udpPort: 5000, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "" }, 400);
    expect(m.tick(900)).toEqual([]);
    expect(logLines(m.tick(901))).toEqual(['WARN [server] connection closed client=192.168.1.20:50001 reason="no response within timeout"']);
  });

  test("with a token, a classroom viewer (which cannot prove one, and would get plain pictures) is refused", () => {
    const m = server(RIGHT);
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.arrived(1, new TextEncoder().encode("8888"), 0);
    expect(out.map((a) => a.kind)).toEqual(["log", "close"]);
    expect(logLines(out)[0]).toBe('WARN [server] client refused reason=auth client=192.168.1.20:50001 kind=classic udp=8888 detail="a classroom viewer cannot prove the token"');
    expect(m.classicCount).toBe(0);
  });
});
