/**
 * An address as it should print and compare.
 *
 * A dual-stack socket reports an IPv4 peer as an IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.7`, any case, sometimes in hex as `::ffff:c000:207`), while a UDP
 * socket or a log line has the plain `192.0.2.7`: both become the IPv4 address. The
 * brackets of a URL-style literal (`[::1]`) go too. Any other IPv6 address, such as
 * `::ffff:1` (not mapped: too short), stays as it is.
 */
export function plainAddress(address: string): string {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const mapped = MAPPED.exec(bare);
  if (!mapped) return bare;
  const [, dotted, high, low] = mapped;
  if (dotted !== undefined) return validIPv4(dotted) ? dotted : bare;
  const hi = Number.parseInt(high!, 16);
  const lo = Number.parseInt(low!, 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

// `::ffff:` (or its long form, five zero groups then ffff) and either a dotted IPv4
// address or two hex groups holding its 32 bits.
const MAPPED = /^(?:::|(?:0{1,4}:){5})ffff:(?:(\d{1,3}(?:\.\d{1,3}){3})|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i;

function validIPv4(dotted: string): boolean {
  return dotted.split(".").every((part) => Number(part) <= 255);
}
