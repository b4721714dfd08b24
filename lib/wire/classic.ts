import { MAX_MESSAGE_SIZE } from "./control.ts";
import { DecodeError, hex } from "./decode-error.ts";

/*
 * The classroom program's protocol ("classic"), which lancam speaks on the side so
 * its viewers and servers can meet lancam's.
 *
 * TCP, viewer to server, once, on the server's control port; nothing else is ever
 * sent on it either way, and the viewer keeps it open while it watches:
 * +---------------------------------------------+
 * | the viewer's UDP port in ASCII decimal,     |   e.g. "8888" = 38 38 38 38,
 * | 1..5 digits, no terminator                  |   in one TCP segment
 * +---------------------------------------------+
 *
 * UDP, server to viewer: one datagram = one whole JPEG picture (no header).
 * UDP, viewer to server, to the address the picture came from, after each one:
 * "continue" (63 6f 6e 74 69 6e 75 65) for the next picture, or "end" (65 6e 64)
 * to leave.
 *
 * A lancam control connection starts with a hello: a u16 big-endian length of at
 * most MAX_MESSAGE_SIZE (1024), so its first byte is 0x00..0x04 (0x00 for every hello
 * so far), never an ASCII digit (0x30..0x39). The first byte alone tells the two
 * apart, so nobody waits for bytes that never come.
 */

/** Largest UDP payload over IPv4 (65 535 - 20 IP - 8 UDP): a classic picture must fit in it. */
export const MAX_CLASSIC_DATAGRAM = 65_507;
/** Most digits a port number has. */
export const MAX_PORT_DIGITS = 5;
/** The highest first byte of a lancam message (its length's high byte). */
const LANCAM_MAX_FIRST_BYTE = MAX_MESSAGE_SIZE >> 8;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const CR = 0x0d;
const LF = 0x0a;

/** What the first bytes of a TCP connection on the control port are. */
export type FirstBytes =
  /** A lancam control connection: hand the bytes (all of them) to the control decoder. */
  | { kind: "lancam" }
  /** A classroom viewer that receives on `port` (UDP, at the TCP peer's address). */
  | { kind: "classic"; port: number }
  /** Nothing to decide on yet: wait for more bytes (bounded by the caller's hello timeout). */
  | { kind: "undecided" }
  /** Neither: close the connection; `reason` names the bad bytes in hex. */
  | { kind: "invalid"; reason: string };

const isDigit = (b: number) => b >= DIGIT_0 && b <= DIGIT_9;

/**
 * Classifies what a connection sent so far. The classroom viewer sends its port with
 * no terminator and then nothing more, so digits decide at once; a trailing "\n" or
 * "\r\n" (someone typing into nc or telnet) is accepted too.
 */
export function classifyFirstBytes(bytes: Uint8Array): FirstBytes {
  if (bytes.length === 0) return { kind: "undecided" };
  const first = bytes[0]!;
  if (first <= LANCAM_MAX_FIRST_BYTE) return { kind: "lancam" };
  if (!isDigit(first)) return { kind: "invalid", reason: `first byte ${hex(first)} is neither a lancam hello nor an ASCII port number` };
  let digits = 0;
  while (digits < bytes.length && isDigit(bytes[digits]!)) digits++;
  if (digits > MAX_PORT_DIGITS) return { kind: "invalid", reason: `port number longer than ${MAX_PORT_DIGITS} digits` };
  const rest = bytes.subarray(digits);
  const ending =
    rest.length === 0 || (rest.length === 1 && rest[0] === LF) || (rest.length === 2 && rest[0] === CR && rest[1] === LF);
  if (rest.length === 1 && rest[0] === CR) return { kind: "undecided" };
  if (!ending) return { kind: "invalid", reason: `byte ${hex(rest[0]!)} after the port number` };
  let port = 0;
  for (let i = 0; i < digits; i++) port = port * 10 + (bytes[i]! - DIGIT_0);
  if (port < 1 || port > 65_535) return { kind: "invalid", reason: `port ${port} outside 1..65535` };
  return { kind: "classic", port };
}

/** The bytes a classic viewer sends on TCP to announce its UDP port (1..65535). */
export function encodeClassicPort(port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`classic port must be 1..65535, got ${port}`);
  return new TextEncoder().encode(String(port));
}

/** A classic viewer's answer to a picture. */
export type ClassicAnswer = "continue" | "end";

const ANSWERS: readonly ClassicAnswer[] = ["continue", "end"];
const ANSWER_BYTES = ANSWERS.map((a) => new TextEncoder().encode(a));
const LONGEST_ANSWER = Math.max(...ANSWER_BYTES.map((b) => b.length));

/** The datagram a classic viewer sends back after a picture. */
export function encodeClassicAnswer(answer: ClassicAnswer): Uint8Array {
  return ANSWER_BYTES[ANSWERS.indexOf(answer)]!.slice();
}

/** Reads a viewer's answer datagram; anything but exactly "continue" or "end" is a DecodeError. */
export function decodeClassicAnswer(bytes: Uint8Array): ClassicAnswer {
  if (bytes.length === 0) throw new DecodeError("truncated", "empty classic answer");
  if (bytes.length > LONGEST_ANSWER) throw new DecodeError("bad-length", `classic answer of ${bytes.length} bytes, at most ${LONGEST_ANSWER}`);
  for (let i = 0; i < ANSWERS.length; i++) {
    const want = ANSWER_BYTES[i]!;
    if (want.length === bytes.length && want.every((b, j) => bytes[j] === b)) return ANSWERS[i]!;
  }
  const shown = Array.from(bytes, (b) => hex(b).slice(2)).join(" ");
  throw new DecodeError("bad-value", `classic answer ${shown} is neither "continue" nor "end"`);
}
