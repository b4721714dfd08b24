import { describe, expect, test } from "bun:test";
import { RETRY_UDP_MS, RETRY_WAIT_MS, TransportChoice, type ChoiceAction, type TransportMode } from "../lib/receive/transport-choice.ts";
import { SwitchReason, TransportEvent, type Transport, type TransportName } from "../lib/wire/control.ts";

const silent = (framesSent = 88): Transport => ({ type: "transport", transport: "udp", event: TransportEvent.Silent, framesSent, text: "" });
const switched = (transport: TransportName): Transport => ({ type: "transport", transport, event: TransportEvent.Switched, framesSent: 100, text: "" });
const refused: Transport = { type: "transport", transport: "udp", event: TransportEvent.Refused, framesSent: 5, text: "udp only here" };

function start(mode: TransportMode, offered = true, retryUdpMs?: number): { m: TransportChoice; first: ChoiceAction[] } {
  const m = new TransportChoice({ mode, retryUdpMs });
  return { m, first: m.push({ type: "welcome", offered, udpPort: 40544 }, 0) };
}

const sends = (out: ChoiceAction[]) => out.flatMap((a) => (a.type === "send" ? [a.msg] : []));

describe("transport choice", () => {
  test("auto: UDP first, asks nothing while datagrams come", () => {
    const { m, first } = start("auto");
    expect(first).toEqual([]);
    expect(m.push({ type: "datagram", via: "udp" }, 100)).toEqual([]);
    expect(m.push({ type: "tick" }, 10_000)).toEqual([]);
    expect(m.transport).toBe("udp");
  });

  test("auto: the server's word that nothing arrived gives one warning naming the port and the fix, and asks for TCP", () => {
    const { m } = start("auto");
    const out = m.push({ type: "transport", msg: silent(88) }, 3000);
    const warning = out.find((a) => a.type === "blocked");
    expect(warning?.type === "blocked" && warning.text).toContain("UDP port 40544");
    expect(warning?.type === "blocked" && warning.text).toContain("88 frames");
    expect(warning?.type === "blocked" && warning.text).toContain("firewall");
    expect(warning?.type === "blocked" && warning.text).toContain("allow incoming UDP port 40544");
    expect(sends(out)).toEqual([{ type: "switch", transport: "tcp", reason: SwitchReason.Silent }]);
    expect(m.udpBlocked).toBe(true);
    // The answer moves it; a second silent word while asking asks nothing more.
    expect(sends(m.push({ type: "transport", msg: silent(90) }, 3100))).toEqual([]);
    expect(m.push({ type: "transport", msg: switched("tcp") }, 3200)).toEqual([{ type: "moved", transport: "tcp", why: "udp does not get through" }]);
    expect(m.transport).toBe("tcp");
  });

  test("auto: after RETRY_UDP_MS on TCP it tries UDP; one datagram by UDP keeps it there", () => {
    const { m } = start("auto");
    m.push({ type: "transport", msg: silent() }, 3000);
    m.push({ type: "transport", msg: switched("tcp") }, 3100);
    expect(m.push({ type: "tick" }, 3100 + RETRY_UDP_MS - 1)).toEqual([]);
    expect(sends(m.push({ type: "tick" }, 3100 + RETRY_UDP_MS))).toEqual([{ type: "switch", transport: "udp", reason: SwitchReason.Retry }]);
    expect(m.push({ type: "transport", msg: switched("udp") }, 3200 + RETRY_UDP_MS)).toEqual([]);
    expect(m.push({ type: "datagram", via: "udp" }, 3300 + RETRY_UDP_MS)).toEqual([{ type: "moved", transport: "udp", why: "udp gets through again" }]);
    expect(m.transport).toBe("udp");
    expect(m.push({ type: "tick" }, 3200 + RETRY_UDP_MS + RETRY_WAIT_MS + 1)).toEqual([]);
  });

  test("auto: a UDP retry that sees nothing within RETRY_WAIT_MS goes back to TCP, without a second warning", () => {
    const { m } = start("auto", true, 2000);
    m.push({ type: "transport", msg: silent() }, 3000);
    m.push({ type: "transport", msg: switched("tcp") }, 3100);
    m.push({ type: "tick" }, 5100);
    m.push({ type: "transport", msg: switched("udp") }, 5200);
    expect(m.push({ type: "tick" }, 5200 + RETRY_WAIT_MS - 1)).toEqual([]);
    const back = m.push({ type: "tick" }, 5200 + RETRY_WAIT_MS);
    expect(sends(back)).toEqual([{ type: "switch", transport: "tcp", reason: SwitchReason.Silent }]);
    expect(back.some((a) => a.type === "blocked")).toBe(false);
    m.push({ type: "transport", msg: switched("tcp") }, 8300);
    expect(m.transport).toBe("tcp");
  });

  test("auto: a UDP datagram that overtakes the server's answer to the retry counts", () => {
    const { m } = start("auto", true, 1000);
    m.push({ type: "transport", msg: silent() }, 3000);
    m.push({ type: "transport", msg: switched("tcp") }, 3100);
    m.push({ type: "tick" }, 4100);
    expect(m.push({ type: "datagram", via: "udp" }, 4150)).toEqual([{ type: "moved", transport: "udp", why: "udp gets through again" }]);
    expect(m.push({ type: "transport", msg: switched("udp") }, 4200)).toEqual([]);
    expect(m.push({ type: "tick" }, 4200 + RETRY_WAIT_MS + 1)).toEqual([]);
  });

  test("udp: warns that it keeps waiting, names --transport tcp, never asks", () => {
    const { m, first } = start("udp");
    expect(first).toEqual([]);
    const out = m.push({ type: "transport", msg: silent() }, 3000);
    expect(sends(out)).toEqual([]);
    const w = out[0];
    expect(w?.type).toBe("blocked");
    expect(w?.type === "blocked" && w.text).toContain("--transport tcp");
    expect(w?.type === "blocked" && w.text).toContain("Still waiting");
    expect(m.push({ type: "tick" }, 100_000)).toEqual([]);
  });

  test("tcp: asks at the welcome and never goes back to UDP", () => {
    const { m, first } = start("tcp");
    expect(sends(first)).toEqual([{ type: "switch", transport: "tcp", reason: SwitchReason.Asked }]);
    expect(m.push({ type: "transport", msg: switched("tcp") }, 10)).toEqual([{ type: "moved", transport: "tcp", why: "asked for with --transport tcp" }]);
    expect(m.push({ type: "tick" }, 10 * RETRY_UDP_MS)).toEqual([]);
  });

  test("a refusal is passed on with the server's words and not asked again this session", () => {
    const { m } = start("auto");
    m.push({ type: "transport", msg: silent() }, 3000);
    expect(m.push({ type: "transport", msg: refused }, 3100)).toEqual([{ type: "refused", text: "udp only here" }]);
    expect(sends(m.push({ type: "transport", msg: silent() }, 9000))).toEqual([]);
    // A new session may ask again (the server may have restarted without the switch).
    m.push({ type: "welcome", offered: true, udpPort: 40544 }, 10_000);
    expect(sends(m.push({ type: "transport", msg: silent() }, 13_000))).toHaveLength(1);
  });

  test("a server that does not offer TCP delivery: tcp says so; auto warns with the fix and asks nothing", () => {
    expect(start("tcp", false).first).toEqual([{ type: "refused", text: "the server does not offer TCP delivery (an older lancam)" }]);
    const { m } = start("auto", false);
    const out = m.push({ type: "transport", msg: silent() }, 3000);
    expect(sends(out)).toEqual([]);
    expect(out[0]?.type === "blocked" && out[0].text).toContain("cannot send by TCP");
  });

  test("the warning is given once per viewer, across sessions", () => {
    const { m } = start("auto");
    expect(m.push({ type: "transport", msg: silent() }, 3000).filter((a) => a.type === "blocked")).toHaveLength(1);
    m.push({ type: "welcome", offered: true, udpPort: 40544 }, 5000);
    expect(m.push({ type: "transport", msg: silent() }, 8000).filter((a) => a.type === "blocked")).toHaveLength(0);
  });

  test("auto: a reconnect after the session ended on TCP asks for TCP at once; after one that ended on UDP, it does not", () => {
    const { m } = start("auto");
    m.push({ type: "transport", msg: silent() }, 3000);
    m.push({ type: "transport", msg: switched("tcp") }, 3100);
    expect(sends(m.push({ type: "welcome", offered: true, udpPort: 40544 }, 9000))).toEqual([{ type: "switch", transport: "tcp", reason: SwitchReason.Silent }]);
    m.push({ type: "transport", msg: switched("tcp") }, 9100);
    // Back on UDP by a retry, then a reconnect: UDP first again.
    m.push({ type: "tick" }, 9100 + RETRY_UDP_MS);
    m.push({ type: "datagram", via: "udp" }, 9200 + RETRY_UDP_MS);
    expect(m.transport).toBe("udp");
    expect(m.push({ type: "welcome", offered: true, udpPort: 40544 }, 9300 + RETRY_UDP_MS)).toEqual([]);
  });

  test("UDP datagrams are worth feeding only while a UDP retry waits for one", () => {
    const { m } = start("auto", true, 1000);
    expect(m.awaitingUdp).toBe(false);
    m.push({ type: "transport", msg: silent() }, 3000);
    m.push({ type: "transport", msg: switched("tcp") }, 3100);
    expect(m.awaitingUdp).toBe(false);
    m.push({ type: "tick" }, 4100);
    expect(m.awaitingUdp).toBe(true);
    m.push({ type: "datagram", via: "udp" }, 4150);
    // Until the server answers, a datagram that overtook the answer is remembered.
    m.push({ type: "transport", msg: switched("udp") }, 4200);
    expect(m.awaitingUdp).toBe(false);
    expect(m.transport).toBe("udp");
  });

  test("nothing happens before a session", () => {
    const m = new TransportChoice({ mode: "auto" });
    expect(m.push({ type: "transport", msg: silent() }, 0)).toEqual([]);
    expect(m.push({ type: "datagram", via: "udp" }, 0)).toEqual([]);
    expect(m.transport).toBe("udp");
  });
});
