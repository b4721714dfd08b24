import { expect, test } from "bun:test";
import { plainAddress } from "../lib/net/address.ts";

test("an IPv4-mapped IPv6 address becomes the IPv4 address, so a TCP peer and a UDP source compare equal", () => {
  const cases: [string, string][] = [
    ["::ffff:192.168.1.5", "192.168.1.5"],
    ["::FFFF:192.168.1.5", "192.168.1.5"],
    ["[::ffff:127.0.0.1]", "127.0.0.1"],
    ["0:0:0:0:0:ffff:10.0.0.1", "10.0.0.1"],
    ["::ffff:c0a8:105", "192.168.1.5"],
    ["::ffff:7F00:1", "127.0.0.1"],
  ];
  for (const [given, plain] of cases) expect([given, plainAddress(given)]).toEqual([given, plain]);
});

test("plain IPv4, other IPv6 addresses and names stay as they are, without brackets", () => {
  const cases: [string, string][] = [
    ["192.168.1.5", "192.168.1.5"],
    ["::1", "::1"],
    ["[::1]", "::1"],
    ["fe80::1", "fe80::1"],
    ["2001:db8::ffff:1.2.3.4", "2001:db8::ffff:1.2.3.4"], // not mapped: the prefix is not ::ffff
    ["::ffff:1", "::ffff:1"], // one group: a real IPv6 address, not a mapped one
    ["::ffff:300.1.2.3", "::ffff:300.1.2.3"], // no IPv4 address has a 300
    ["::ffff", "::ffff"],
    ["[::1", "[::1"],
    ["localhost", "localhost"],
    ["", ""],
  ];
  for (const [given, plain] of cases) expect([given, plainAddress(given)]).toEqual([given, plain]);
});
