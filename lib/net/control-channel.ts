import { encodeControl, type ControlMessage } from "../wire/control.ts";
import { MessageReader } from "../wire/message-reader.ts";
import type { ControlMac } from "./control-mac.ts";

/** The part of a Bun TCP socket the channel needs (both Bun.listen's and Bun.connect's sockets fit). */
export interface ByteSocket {
  write(data: Uint8Array): number;
  end(): void;
  /** Closes at once, dropping what is unwritten (a peer that stopped reading would hold end() up). */
  terminate?(): void;
}

/** Most control bytes a channel holds for a peer that does not read; past this it is closed. */
export const MAX_PENDING_BYTES = 64 * 1024;

/**
 * One TCP control connection: framed messages in, framed messages out, with a
 * bounded outgoing buffer that resumes on `drain`. Malformed input ends this
 * connection only. The owner forwards the socket's data/drain events here.
 *
 * Once `secure` is called, every message sent carries a tag and every message
 * received must pass `authentic` before it is acted on.
 */
export class ControlChannel {
  readonly #socket: ByteSocket;
  readonly #reader: MessageReader;
  readonly #maxPendingBytes: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** Bytes of a frame (sendFrame) still queued: they do not count toward the bound, which is for control messages. */
  #frameAllowance = 0;
  #closing = false;
  #mac: ControlMac | null = null;
  /** A tagged message has checked out: from then on nothing untagged is believed. */
  #heardTagged = false;
  closed = false;
  /** Closed because the peer stopped reading and the outgoing buffer reached its bound. */
  overflowed = false;

  /** `datagrams`: a viewer's channel, which takes datagram messages (TCP delivery). */
  constructor(socket: ByteSocket, opts: { maxPendingBytes?: number; datagrams?: boolean } = {}) {
    this.#socket = socket;
    this.#maxPendingBytes = opts.maxPendingBytes ?? MAX_PENDING_BYTES;
    this.#reader = new MessageReader({ datagrams: opts.datagrams });
  }

  /** Bytes written to the channel but not yet to the socket. */
  get queuedBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * A frame's datagram messages, already framed, written whole or not at all: only
   * when nothing is queued (the caller also asks the kernel, see lib/net/tcp-queue.ts).
   * Returns false when it was not taken (skipped: the newest frame wins next time).
   * What the socket does not take at once is queued and may exceed the control bound.
   */
  sendFrame(bytes: Uint8Array): boolean {
    if (this.closed || this.#closing || this.#pending.length > 0) return false;
    const n = this.#socket.write(bytes);
    if (n < 0) {
      this.closed = true;
      return false;
    }
    if (n < bytes.length) {
      // Ours to keep: the caller built it for this write alone.
      this.#pending.push(bytes.subarray(n));
      this.#pendingBytes += bytes.length - n;
      this.#frameAllowance = bytes.length - n;
    }
    return true;
  }

  /** Decodes what arrived; throws DecodeError on a malformed message (the caller closes). */
  receive(chunk: Uint8Array): ControlMessage[] {
    return this.#reader.push(chunk);
  }

  /** From now on messages are tagged and checked with `mac`. */
  secure(mac: ControlMac): void {
    this.#mac = mac;
  }

  /** Whether messages are tagged and checked. */
  get secured(): boolean {
    return this.#mac !== null;
  }

  /** Messages received with a missing or wrong tag (dropped by the owner). */
  get forged(): number {
    return this.#mac?.forged ?? 0;
  }

  /**
   * Whether a received message may be acted on: always on a connection that is not
   * secured; on one that is, only with the right tag. One exception: an untagged
   * refuse before any tagged message, which is how a server that could not check the
   * client's proof (a wrong token) says so; it can only end the attempt, as a reset would.
   */
  authentic(msg: ControlMessage): boolean {
    const mac = this.#mac;
    if (!mac) return true;
    if (!msg.tag && msg.type === "refuse" && !this.#heardTagged) return true;
    const ok = mac.open(msg);
    if (ok) this.#heardTagged = true;
    return ok;
  }

  /** Queues a message; returns false (and closes) when the peer has stopped reading. */
  send(msg: ControlMessage): boolean {
    if (this.closed) return false;
    const bytes = this.#mac ? this.#mac.seal(msg) : encodeControl(msg);
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
    if (this.#pendingBytes > this.#maxPendingBytes + this.#frameAllowance) {
      this.overflowed = true;
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
    if (this.#pending.length === 0) this.#frameAllowance = 0;
    if (this.#closing) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#frameAllowance = 0;
    if (this.overflowed && this.#socket.terminate) this.#socket.terminate();
    else this.#socket.end();
  }

  #queue(bytes: Uint8Array): void {
    // Copy: the encoder's buffer is not ours to keep.
    this.#pending.push(bytes.slice());
    this.#pendingBytes += bytes.length;
  }
}
