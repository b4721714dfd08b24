// A viewer's token handshake from a chosen loopback address, by hand: connect from
// `localAddress` (any 127.x.y.z works on Linux without setup), say hello, answer the
// challenge with a proof made from `token`, and report what the server said. For
// floods of guesses (tests/auth-flood.test.ts, bench/auth-flood.ts) and the real viewer
// that must get in while they run.
import net from "node:net";
import { clientProof, deriveSessionKeys, type TokenKey } from "../../lib/net/session-keys.ts";
import { CAP_DECRYPT, CAP_TOKEN_AUTH, encodeControl, PROTOCOL_VERSION, type Hello } from "../../lib/wire/control.ts";
import { MessageReader } from "../../lib/wire/message-reader.ts";

/** What one attempt came to: welcomed, refused (with the refuse's reason and text), or closed without either. */
export type GuessOutcome = { kind: "welcome" } | { kind: "refused"; reason: number; text: string } | { kind: "closed" };

/** One handshake from `localAddress` to 127.0.0.1:port with `token`; the connection is closed once answered. */
export function guessToken(port: number, localAddress: string, token: TokenKey, timeoutMs = 5000): Promise<GuessOutcome> {
  return new Promise((resolve) => {
    const reader = new MessageReader();
    const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: 9, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "" };
    let done = false;
    const finish = (o: GuessOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const sock = net.connect({ host: "127.0.0.1", port, localAddress }, () => sock.write(encodeControl(hello)));
    const timer = setTimeout(() => finish({ kind: "closed" }), timeoutMs);
    sock.on("data", (chunk: Buffer) => {
      let messages;
      try {
        messages = reader.push(new Uint8Array(chunk));
      } catch {
        return finish({ kind: "closed" });
      }
      for (const m of messages) {
        if (m.type === "challenge") {
          const t = { hello, challenge: m, clientNonce: crypto.getRandomValues(new Uint8Array(32)) };
          sock.write(encodeControl({ type: "response", clientNonce: t.clientNonce, proof: clientProof(deriveSessionKeys(token, t), t) }));
        } else if (m.type === "refuse") {
          return finish({ kind: "refused", reason: m.reason, text: m.text });
        } else if (m.type === "welcome") {
          return finish({ kind: "welcome" });
        }
      }
    });
    sock.on("error", () => finish({ kind: "closed" }));
    sock.on("close", () => finish({ kind: "closed" }));
  });
}

/** Addresses 127.A.B.C for `count` guessers, spread over /24 networks of `perNetwork` addresses each, starting at 127.`first`.0.1. */
export function loopbackAddresses(count: number, perNetwork = 250, first = 100): string[] {
  return Array.from({ length: count }, (_, i) => {
    const net24 = first * 256 + Math.floor(i / perNetwork);
    return `127.${net24 >> 8}.${net24 & 0xff}.${(i % perNetwork) + 1}`;
  });
}

/**
 * Guesses with `token` from every address in turn, `concurrency` at a time, until
 * `stop()` returns true. Returns how many attempts were made and how each ended.
 */
export async function flood(port: number, addresses: string[], token: TokenKey, concurrency: number, stop: () => boolean): Promise<{ attempts: number; welcomed: number; refused: number; closed: number }> {
  const counts = { attempts: 0, welcomed: 0, refused: 0, closed: 0 };
  let next = 0;
  const worker = async () => {
    while (!stop()) {
      const address = addresses[next++ % addresses.length]!;
      counts.attempts++;
      const o = await guessToken(port, address, token, 2000);
      if (o.kind === "welcome") counts.welcomed++;
      else if (o.kind === "refused") counts.refused++;
      else counts.closed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}
