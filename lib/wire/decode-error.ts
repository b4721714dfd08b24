/** What was wrong with the bytes, for callers that react differently (e.g. refuse a newer version). */
export type DecodeErrorCode =
  | "truncated" // fewer bytes than the format needs
  | "bad-magic" // not one of ours at all
  | "bad-version" // ours, but a protocol version this build does not speak
  | "bad-type" // unknown or reserved message/payload type
  | "bad-length" // a length field out of range, or bytes left over
  | "bad-value"; // a field outside its allowed range, or reserved bits set

/** Bytes from the network that do not follow the protocol; the message names the bad value in hex. */
export class DecodeError extends Error {
  override name = "DecodeError";
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** `0x` and `value` in hex, zero-padded to `bytes` bytes: hex(0x4c, 2) is "0x004c". */
export function hex(value: number | bigint, bytes = 1): string {
  return "0x" + value.toString(16).padStart(bytes * 2, "0");
}
