import { DATAGRAM_MESSAGE_MAX, decodeControl, FRAME_HEADER_SIZE, LENGTH_SIZE, MAX_MESSAGE_SIZE, peekMessageSize, type ControlMessage } from "./control.ts";
import { DecodeError } from "./decode-error.ts";

/**
 * Turns a TCP byte stream into control messages, whatever the chunk boundaries.
 * Whole messages are decoded straight from the chunk; only a message split across
 * chunks is copied, into one fixed MAX_MESSAGE_SIZE buffer, so a peer can never make
 * it hold more. After a DecodeError the stream has lost its framing: the reader
 * keeps throwing that error and the caller closes the connection.
 * A viewer's reader (`datagrams`) also takes datagram messages (TCP delivery), so its
 * buffer is DATAGRAM_MESSAGE_MAX; a server's never does.
 */
export class MessageReader {
  readonly #buf: Uint8Array;
  readonly #datagrams: boolean;
  #held = 0;
  #failed: DecodeError | null = null;

  constructor(opts: { datagrams?: boolean } = {}) {
    this.#datagrams = opts.datagrams ?? false;
    this.#buf = new Uint8Array(this.#datagrams ? DATAGRAM_MESSAGE_MAX : MAX_MESSAGE_SIZE);
  }

  /** Bytes of an incomplete message waiting for the next chunk. */
  get buffered(): number {
    return this.#held;
  }

  /** Messages completed by `chunk`, in order; throws DecodeError on a bad length, type or body. */
  push(chunk: Uint8Array): ControlMessage[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk);
    } catch (e) {
      if (e instanceof DecodeError) this.#failed = e;
      throw e;
    }
  }

  #push(chunk: Uint8Array): ControlMessage[] {
    const out: ControlMessage[] = [];
    let pos = 0;
    // Finish the message the last chunk left open, copying only the bytes it still lacks.
    while (this.#held > 0) {
      const size = peekMessageSize(this.#buf.subarray(0, this.#held), this.#datagrams);
      // Unknown size: the prefix is short, or a long length waits for the type byte.
      const want = size ?? (this.#held < LENGTH_SIZE ? LENGTH_SIZE : FRAME_HEADER_SIZE);
      const take = Math.min(want - this.#held, chunk.length - pos);
      this.#buf.set(chunk.subarray(pos, pos + take), this.#held);
      this.#held += take;
      pos += take;
      if (this.#held < want) {
        // Still short: check what did arrive (a bad length or type fails now, not later).
        peekMessageSize(this.#buf.subarray(0, this.#held), this.#datagrams);
        return out;
      }
      if (size !== null) {
        const msg = decodeControl(this.#buf.subarray(0, size), this.#datagrams);
        this.#held = 0;
        out.push(msg);
      }
    }
    // Whole messages straight from the chunk; keep a trailing partial one.
    while (pos < chunk.length) {
      const rest = chunk.subarray(pos);
      const size = peekMessageSize(rest, this.#datagrams);
      if (size === null || rest.length < size) {
        this.#buf.set(rest);
        this.#held = rest.length;
        break;
      }
      out.push(decodeControl(rest.subarray(0, size), this.#datagrams));
      pos += size;
    }
    return out;
  }
}
