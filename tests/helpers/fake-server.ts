import type { TCPSocketListener } from "bun";
import { encodeControl, type ControlMessage, type Welcome } from "../../lib/wire/control.ts";
import { MessageReader } from "../../lib/wire/message-reader.ts";

/** A hand-made lancam control server on 127.0.0.1 for client-side tests. */
export interface FakeServer extends Disposable {
  listener: TCPSocketListener<{ reader: MessageReader }>;
  port: number;
  /** Every message the clients sent, in order. */
  heard: ControlMessage[];
}

/** A welcome for a 64x48 stream at 10 fps; override any field. */
export function welcome(over: Partial<Welcome> = {}): Welcome {
  return {
    type: "welcome", sessionId: 42, width: 64, height: 48, fpsMillihertz: 10_000, fragmentSize: 1368,
    udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 0, ...over,
  };
}

/** Answers each hello with the bytes `answer` returns (nothing for null), and nothing else ever. */
export function fakeServer(
  answer: (hello: Extract<ControlMessage, { type: "hello" }>, socket: { end(): void }) => Uint8Array | null,
): FakeServer {
  const heard: ControlMessage[] = [];
  const listener = Bun.listen<{ reader: MessageReader }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { reader: new MessageReader() };
      },
      data: (s, chunk) => {
        for (const m of s.data.reader.push(chunk)) {
          heard.push(m);
          const bytes = m.type === "hello" ? answer(m, s) : null;
          if (bytes) s.write(bytes);
        }
      },
    },
  });
  return { listener, port: listener.port, heard, [Symbol.dispose]: () => listener.stop(true) };
}

/** Welcomes every hello with `welcome(over)`. */
export function welcomingServer(over: Partial<Welcome> = {}): FakeServer {
  return fakeServer(() => encodeControl(welcome(over)));
}
