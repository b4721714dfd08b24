import { encodeControl, type ControlMessage } from "../wire/control.ts";
import { MessageReader } from "../wire/message-reader.ts";

/** The part of a Bun TCP socket the channel needs (both Bun.listen's and Bun.connect's sockets fit). */
export interface ByteSocket {
  write(data: Uint8Array): number;
  end(): void;
}

/** Most control bytes a channel holds for a peer that does not read; past this it is closed. */
export const MAX_PENDING_BYTES = 64 * 1024;

/**
 * One TCP control connection: framed messages in, framed messages out, with a
 * bounded outgoing buffer that resumes on `drain`. Malformed input ends this
 * connection only. The owner forwards the socket's data/drain events here.
 */
export class ControlChannel {
  readonly #socket: ByteSocket;
  readonly #reader = new MessageReader();
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #closing = false;
  closed = false;

  constructor(socket: ByteSocket) {
    this.#socket = socket;
  }

  /** Decodes what arrived; throws DecodeError on a malformed message (the caller closes). */
  receive(chunk: Uint8Array): ControlMessage[] {
    return this.#reader.push(chunk);
  }

  /** Queues a message; returns false (and closes) when the peer has stopped reading. */
  send(msg: ControlMessage): boolean {
    if (this.closed) return false;
    const bytes = encodeControl(msg);
    if (this.#pending.length === 0) {
      const n = this.#socket.write(bytes);
      if (n < 0) {
        this.closed = true;
        return false;
      }
      if (n === bytes.length) return true;
      this.#queue(bytes.subarray(n));
    } else {
      this.#queue(bytes);
    }
    if (this.#pendingBytes > MAX_PENDING_BYTES) {
      this.close();
      return false;
    }
    return true;
  }

  /** Sends `msg` if given, then closes once everything queued is written. */
  finish(msg?: ControlMessage): void {
    if (msg) this.send(msg);
    this.#closing = true;
    if (this.#pending.length === 0) this.close();
  }

  /** Call from the socket's drain handler. */
  drain(): void {
    while (this.#pending.length > 0 && !this.closed) {
      const head = this.#pending[0]!;
      const n = this.#socket.write(head);
      if (n < 0) {
        this.closed = true;
        return;
      }
      this.#pendingBytes -= n;
      if (n < head.length) {
        this.#pending[0] = head.subarray(n);
        return;
      }
      this.#pending.shift();
    }
    if (this.#closing) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#socket.end();
  }

  #queue(bytes: Uint8Array): void {
    // Copy: the encoder's buffer is not ours to keep.
    this.#pending.push(bytes.slice());
    this.#pendingBytes += bytes.length;
  }
}
