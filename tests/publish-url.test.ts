import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parsePublishCodec, PublishCodecError } from "../lib/publish/publish-process.ts";
import {
  withSubPath,
  parsePublishCredentials,
  parsePublishUrl,
  type PublishScheme,
  PublishUrlError,
  readPublishTokenFile,
  redactSecrets,
  redactUrl,
  redactUrlsIn,
  withCredentials,
} from "../lib/publish/publish-url.ts";
import { MAX_PUBLISH_TARGETS, parsePublishTargets } from "../lib/publish/publishers.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-publish-url-");

/** Accepted URLs and what they split into. */
const VALID: { text: string; url: string; redacted: string; scheme: PublishScheme; host: string; port: number; path: string; creds: boolean }[] = [
  { text: "rtsp://127.0.0.1:8554/classroom", url: "rtsp://127.0.0.1:8554/classroom", redacted: "rtsp://127.0.0.1:8554/classroom", scheme: "rtsp", host: "127.0.0.1", port: 8554, path: "/classroom", creds: false },
  { text: "rtsp://media.school.example/room/4b", url: "rtsp://media.school.example/room/4b", redacted: "rtsp://media.school.example/room/4b", scheme: "rtsp", host: "media.school.example", port: 554, path: "/room/4b", creds: false },
  { text: "rtsps://media:8322/classroom", url: "rtsps://media:8322/classroom", redacted: "rtsps://media:8322/classroom", scheme: "rtsps", host: "media", port: 8322, path: "/classroom", creds: false },
  { text: "rtsps://media/classroom", url: "rtsps://media/classroom", redacted: "rtsps://media/classroom", scheme: "rtsps", host: "media", port: 322, path: "/classroom", creds: false },
  // The scheme is case-insensitive and written lower case for ffmpeg; the rest is kept as given.
  { text: "RTSP://Media:8554/Class", url: "rtsp://Media:8554/Class", redacted: "rtsp://Media:8554/Class", scheme: "rtsp", host: "Media", port: 8554, path: "/Class", creds: false },
  { text: "rtsp://[::1]:8554/x", url: "rtsp://[::1]:8554/x", redacted: "rtsp://[::1]:8554/x", scheme: "rtsp", host: "[::1]", port: 8554, path: "/x", creds: false },
  { text: "rtsp://[fe80::1%25eth0]/x", url: "rtsp://[fe80::1%25eth0]/x", redacted: "rtsp://[fe80::1%25eth0]/x", scheme: "rtsp", host: "[fe80::1%25eth0]", port: 554, path: "/x", creds: false },
  { text: "rtsp://cam:pa%40ss%3Aw@10.0.0.2:8554/classroom", url: "rtsp://cam:pa%40ss%3Aw@10.0.0.2:8554/classroom", redacted: "rtsp://***@10.0.0.2:8554/classroom", scheme: "rtsp", host: "10.0.0.2", port: 8554, path: "/classroom", creds: true },
  { text: "rtsp://cam:@host/x", url: "rtsp://cam:@host/x", redacted: "rtsp://***@host/x", scheme: "rtsp", host: "host", port: 554, path: "/x", creds: true },
  { text: "rtsp://host:8554/classroom?jwt=eyJh.eyJz.c2ln&x", url: "rtsp://host:8554/classroom?jwt=eyJh.eyJz.c2ln&x", redacted: "rtsp://host:8554/classroom?jwt=***&***", scheme: "rtsp", host: "host", port: 8554, path: "/classroom", creds: false },
  { text: "rtsp://host/a%20b/c~d_e.f-g", url: "rtsp://host/a%20b/c~d_e.f-g", redacted: "rtsp://host/a%20b/c~d_e.f-g", scheme: "rtsp", host: "host", port: 554, path: "/a%20b/c~d_e.f-g", creds: false },
];

const EXAMPLE = "rtsp://HOST[:PORT]/PATH, e.g. rtsp://192.168.1.10:8554/classroom";

/** Refused URLs and the exact message. */
const INVALID: { text: string; message: string }[] = [
  { text: "", message: `invalid --publish=: empty; expected ${EXAMPLE}` },
  { text: "media:8554/classroom", message: `invalid --publish=media:8554/classroom: expected ${EXAMPLE}` },
  { text: "http://media/classroom", message: "invalid --publish=http://media/classroom: scheme http:// is not supported; expected rtsp:// or rtsps://" },
  { text: "rtmp://cam:topsecret@media/live", message: "invalid --publish=rtmp://***@media/live: scheme rtmp:// is not supported; expected rtsp:// or rtsps://" },
  { text: "rtsp://media/class room", message: "invalid --publish=rtsp://media/class room: contains a space or control character; escape it as %XX" },
  { text: "rtsp://media/x#top", message: "invalid --publish=rtsp://media/x#top: a #fragment is never sent to the server; remove it" },
  { text: "rtsp://media:8554", message: "invalid --publish=rtsp://media:8554: no path: name the stream, e.g. rtsp://media:8554/classroom" },
  { text: "rtsp://media/", message: "invalid --publish=rtsp://media/: no path: name the stream, e.g. rtsp://media:554/classroom" },
  { text: "rtsp:///classroom", message: `invalid --publish=rtsp:///classroom: no host; expected ${EXAMPLE}` },
  { text: "rtsp://:8554/classroom", message: `invalid --publish=rtsp://:8554/classroom: no host; expected ${EXAMPLE}` },
  { text: "rtsp://media:0/x", message: 'invalid --publish=rtsp://media:0/x: bad port "0": expected 1..65535' },
  { text: "rtsp://media:70000/x", message: 'invalid --publish=rtsp://media:70000/x: bad port "70000": expected 1..65535' },
  { text: "rtsp://media:85a4/x", message: 'invalid --publish=rtsp://media:85a4/x: bad port "85a4": expected 1..65535' },
  { text: "rtsp://media:/x", message: 'invalid --publish=rtsp://media:/x: bad port "": expected 1..65535' },
  { text: "rtsp://me_dia/x", message: 'invalid --publish=rtsp://me_dia/x: bad host "me_dia": expected a host name, an IPv4 address or [IPv6]' },
  { text: "rtsp://-media/x", message: 'invalid --publish=rtsp://-media/x: bad host "-media": expected a host name, an IPv4 address or [IPv6]' },
  { text: "rtsp://[::1:8554/x", message: 'invalid --publish=rtsp://[::1:8554/x: bad host "[::1:8554": an IPv6 address needs its closing ]' },
  { text: "rtsp://[zz]/x", message: 'invalid --publish=rtsp://[zz]/x: bad host "[zz]": not an IPv6 address' },
  { text: "rtsp://media/a%zz", message: 'invalid --publish=rtsp://media/a%zz: bad path "/a%zz": use letters, digits and - . _ ~ / (escape others as %XX)' },
  { text: "rtsp://media/a\"b", message: 'invalid --publish=rtsp://media/a"b: bad path "/a\\"b": use letters, digits and - . _ ~ / (escape others as %XX)' },
  { text: "rtsp://media/x?a=%g1", message: "invalid --publish=rtsp://media/x?a=***: the query holds a character that must be escaped as %XX" },
  { text: "rtsp://cam@media/x", message: "invalid --publish=rtsp://***@media/x: credentials must be USER:PASSWORD (or use --publish-token-file)" },
  { text: "rtsp://:topsecret@media/x", message: "invalid --publish=rtsp://***@media/x: the user before the : is empty" },
  { text: "rtsp://cam:top@secret@media/x", message: "invalid --publish=rtsp://***@media/x: write an @ in a user or password as %40" },
  { text: "rtsp://cam:top/secret@media/x", message: "invalid --publish=rtsp://***@media/x: write a / in a user or password as %2F" },
  { text: "rtsp://cam:top%secret@media/x", message: "invalid --publish=rtsp://***@media/x: the user or password holds a character that must be escaped as %XX" },
];

describe("parsePublishUrl", () => {
  for (const v of VALID) {
    test(`accepts ${v.text}`, () => {
      const t = parsePublishUrl(v.text);
      expect({ url: t.url, redacted: t.redacted, scheme: t.scheme, host: t.host, port: t.port, path: t.path, creds: t.hasCredentials })
        .toEqual({ url: v.url, redacted: v.redacted, scheme: v.scheme, host: v.host, port: v.port, path: v.path, creds: v.creds });
    });
  }

  for (const v of INVALID) {
    test(`refuses ${JSON.stringify(v.text)}`, () => {
      let caught: unknown;
      try {
        parsePublishUrl(v.text);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(PublishUrlError);
      expect((caught as Error).message).toBe(v.message);
    });
  }

  test("no refusal quotes a password, however the URL is broken", () => {
    for (const v of INVALID) {
      try {
        parsePublishUrl(v.text);
      } catch (e) {
        expect((e as Error).message).not.toContain("topsecret");
        expect((e as Error).message).not.toMatch(/top.secret/);
      }
    }
  });

  test("the flag name in messages can be chosen", () => {
    expect(() => parsePublishUrl("rtsp://media", "--push")).toThrow("invalid --push=rtsp://media: no path");
  });

  test("secrets hold user, password and query values, as written and decoded", () => {
    const t = parsePublishUrl("rtsp://cam:pa%40ss@media/x?jwt=abc%2Edef");
    expect([...t.secrets].sort()).toEqual(["abc%2Edef", "abc.def", "cam", "pa%40ss", "pa@ss"]);
    expect(parsePublishUrl("rtsp://media/x").secrets).toEqual([]);
  });
});

describe("redaction", () => {
  test("redactUrl hides credentials and query values of any URL, valid or not", () => {
    expect(redactUrl("rtsp://cam:pw@media:8554/x")).toBe("rtsp://***@media:8554/x");
    expect(redactUrl("rtsp://cam:p@w/x@media/x")).toBe("rtsp://***@media/x");
    expect(redactUrl("cam:pw@media/x")).toBe("***@media/x");
    expect(redactUrl("rtsp://media/x?jwt=abc&token=def")).toBe("rtsp://media/x?jwt=***&token=***");
    expect(redactUrl("rtsp://media/x?user@example")).toBe("rtsp://media/x?***");
    expect(redactUrl("rtsp://media:8554/x")).toBe("rtsp://media:8554/x");
  });

  test("redactUrlsIn finds URLs inside ffmpeg's messages", () => {
    expect(redactUrlsIn("[rtsp @ 0x55d1] rtsp://cam:pw@127.0.0.1:8554/x: Connection refused"))
      .toBe("[rtsp @ 0x55d1] rtsp://***@127.0.0.1:8554/x: Connection refused");
    expect(redactUrlsIn("Output #0, rtsp, to 'rtsps://a:b@h/p?jwt=zz':"))
      .toBe("Output #0, rtsp, to 'rtsps://***@h/p?jwt=***':");
    expect(redactUrlsIn("[tcp @ 0x1] Connection to tcp://127.0.0.1:9?timeout=0 failed")).toBe("[tcp @ 0x1] Connection to tcp://127.0.0.1:9?timeout=0 failed");
    expect(redactUrlsIn("tcp://u:p@127.0.0.1:9?timeout=0")).toBe("tcp://***@127.0.0.1:9?timeout=0");
  });

  test("redactSecrets also replaces secrets outside URLs, unless too short to replace safely", () => {
    const t = parsePublishUrl("rtsp://operator:hunter22@media/x");
    expect(redactSecrets("user operator rejected, password hunter22 (rtsp://operator:hunter22@media/x)", t.secrets))
      .toBe("user *** rejected, password *** (rtsp://***@media/x)");
    const short = parsePublishUrl("rtsp://ab:cd@media/x");
    expect(redactSecrets("ab cd rtsp://ab:cd@media/x", short.secrets)).toBe("ab cd rtsp://***@media/x");
  });
});

describe("credentials from a token file", () => {
  test("USER:PASSWORD on one line; the password may hold colons; a trailing newline, CRLF and BOM are fine", () => {
    expect(parsePublishCredentials("lancam:pa:ss word\n", "f")).toEqual({ user: "lancam", password: "pa:ss word" });
    expect(parsePublishCredentials("\uFEFFlancam:x\r\n\r\n", "f")).toEqual({ user: "lancam", password: "x" });
    expect(parsePublishCredentials("lancam:", "f")).toEqual({ user: "lancam", password: "" });
  });

  test("anything else is refused with the file named, and the secret never quoted", () => {
    const cases: [string, string][] = [
      ["", "f: empty; expected one line USER:PASSWORD"],
      ["\n", "f: empty; expected one line USER:PASSWORD"],
      ["hunter22", "f: expected USER:PASSWORD, found no colon"],
      [":hunter22", "f: the user before the : is empty"],
      ["a:hunter22\nb:c", "f: expected one line USER:PASSWORD, found 2 lines"],
      ["a:hun\tter22", "f: holds a control character"],
    ];
    for (const [text, message] of cases) {
      expect(() => parsePublishCredentials(text, "f")).toThrow(new PublishUrlError(message));
    }
  });

  test("readPublishTokenFile reads the file and names it in errors", () => {
    const dir = tempDir();
    const path = join(dir, "token");
    writeFileSync(path, "lancam:s3cret\n");
    expect(readPublishTokenFile(path)).toEqual({ user: "lancam", password: "s3cret" });
    expect(() => readPublishTokenFile(join(dir, "missing"))).toThrow(`invalid --publish-token-file=${join(dir, "missing")}: cannot read it (ENOENT)`);
    writeFileSync(path, "s3cret\n");
    expect(() => readPublishTokenFile(path)).toThrow(`--publish-token-file=${path}: expected USER:PASSWORD, found no colon`);
  });

  test("withCredentials percent-encodes them into the URL ffmpeg gets, and redacts them everywhere else", () => {
    const t = withCredentials(parsePublishUrl("rtsp://media:8554/classroom"), { user: "room 4", password: "p@ss:w/rd%" });
    expect(t.url).toBe("rtsp://room%204:p%40ss%3Aw%2Frd%25@media:8554/classroom");
    expect(t.redacted).toBe("rtsp://***@media:8554/classroom");
    expect(t.hasCredentials).toBe(true);
    expect(t.secrets).toContain("p@ss:w/rd%");
    expect(t.secrets).toContain("p%40ss%3Aw%2Frd%25");
    // What ffmpeg gets parses back to the same place.
    const again = parsePublishUrl(t.url);
    expect([again.host, again.port, again.path, again.hasCredentials]).toEqual(["media", 8554, "/classroom", true]);
  });

  test("a URL with its own credentials keeps them", () => {
    const own = parsePublishUrl("rtsp://cam:mine@media/x");
    expect(withCredentials(own, { user: "other", password: "theirs" })).toBe(own);
  });
});

describe("parsePublishTargets", () => {
  test("applies the token file's credentials to the URLs without any", () => {
    const [a, b] = parsePublishTargets(["rtsp://media/a", "rtsp://cam:own@media/b"], { user: "lancam", password: "tok" });
    expect(a!.url).toBe("rtsp://lancam:tok@media/a");
    expect(b!.url).toBe("rtsp://cam:own@media/b");
  });

  test("refuses the same target twice (credentials and case of the host aside) and too many targets", () => {
    expect(() => parsePublishTargets(["rtsp://Media:554/a", "rtsp://u:p@media/a"]))
      .toThrow(new PublishUrlError("invalid --publish=rtsp://***@media/a: the same target is given twice"));
    expect(parsePublishTargets(["rtsp://media/a", "rtsps://media/a", "rtsp://media:8554/a"])).toHaveLength(3);
    const many = Array.from({ length: MAX_PUBLISH_TARGETS + 1 }, (_, i) => `rtsp://media/${i}`);
    expect(() => parsePublishTargets(many)).toThrow(`too many --publish targets: ${MAX_PUBLISH_TARGETS + 1}, at most ${MAX_PUBLISH_TARGETS}`);
  });
});

test("parsePublishCodec takes copy or h264 and nothing else", () => {
  expect(parsePublishCodec("copy")).toBe("copy");
  expect(parsePublishCodec("h264")).toBe("h264");
  for (const bad of ["", "H264", "mjpeg", "x264"]) {
    expect(() => parsePublishCodec(bad)).toThrow(new PublishCodecError(`invalid --publish-codec=${bad}: expected copy or h264`));
  }
});

test("each of several cameras publishes one level below the URL given, before its query; the redacted form follows", () => {
  const board = withSubPath(parsePublishUrl("rtsp://u:p@media:8554/classroom?token=s3cret"), "board");
  expect(board.url).toBe("rtsp://u:p@media:8554/classroom/board?token=s3cret");
  expect(board.redacted).toBe("rtsp://***@media:8554/classroom/board?token=***");
  expect(board.path).toBe("/classroom/board");
  expect(withSubPath(parsePublishUrl("rtsp://media/classroom/"), "1").url).toBe("rtsp://media/classroom/1");
  expect(() => withSubPath(parsePublishUrl("rtsp://media/classroom"), "a/b")).toThrow(RangeError);
});
