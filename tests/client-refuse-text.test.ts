// A server's refusal reaches the viewer's terminal: a hostile server must not be able to
// reverse, split or hide what the user reads there.
import { expect, test } from "bun:test";
import { encodeControl, RefuseReason } from "../lib/wire/control.ts";
import { fakeServer } from "./helpers/fake-server.ts";
import { spawnBun, expectExit } from "./helpers/process.ts";

test("the client prints a refuse text with bidi override, line separator and zero-width space spelled out, on one line", async () => {
  // RIGHT-TO-LEFT OVERRIDE turns what follows around, LINE SEPARATOR starts a fake second
  // line, ZERO WIDTH SPACE hides; each is allowed in a refuse text by the wire format.
  const hostile = "full\u202eexe.tset\u2028lancam-client: connected, all fine\u200b";
  using server = fakeServer((_hello, socket) => {
    setTimeout(() => socket.end(), 100);
    // A refusal the viewer takes as final (a busy one would be retried until --connect-timeout).
    return encodeControl({ type: "refuse", reason: RefuseReason.BadHello, text: hostile });
  });
  await using client = spawnBun(["client.ts", "127.0.0.1", String(server.port), "0", "--no-window", "--no-record"]);
  await expectExit(client, 1);
  const stderr = client.stderr();
  expect(stderr).not.toMatch(/[\u202e\u2028\u200b]/);
  // Log lines come first; the error is the last line, whole.
  expect(stderr.endsWith("\n")).toBe(true);
  expect(stderr.trimEnd().split("\n").at(-1)).toBe(
    `lancam-client: error: server 127.0.0.1:${server.port} refused the session: full\\u{202e}exe.tset\\u{2028}lancam-client: connected, all fine\\u{200b}`,
  );
  expect(client.stdout()).toMatch(/^lancam client receiving udp=\d+ from 127\.0\.0\.1:\d+\n$/);
}, 30_000);
