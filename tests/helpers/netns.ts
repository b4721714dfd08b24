// A small LAN of network namespaces (root only): one bridge, hosts on it, and
// optionally a router to a second subnet. Every name starts with a prefix, so what a
// run left behind is found and removed by the next one.
import { spawnChild, type Child } from "./process.ts";

/** Why namespaces cannot be used here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "not root: network namespaces need CAP_NET_ADMIN";
  if (!Bun.which("ip")) return "no `ip` command (iproute2)";
  return null;
}

/** Runs `ip ...args`; throws with its stderr when it fails. */
export function ip(...args: string[]): string {
  const r = Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString().trim()}`);
}

/** Removes every namespace whose name starts with `prefix` (their interfaces go with them). */
export function removeNamespaces(prefix: string): void {
  for (const line of ip("netns", "list").split("\n")) {
    const name = line.split(" ")[0];
    if (name?.startsWith(prefix)) Bun.spawnSync(["ip", "netns", "del", name]);
  }
}

/** A host on the LAN. */
export interface HostSpec {
  /** Namespace name suffix (the namespace is prefix + name). */
  name: string;
  /** Its address on 10.77.0.0/24 (or, behind the router, 10.77.1.0/24). */
  address: string;
  /** Give it a route for 224.0.0.0/4 on its interface. */
  multicastRoute?: boolean;
  /** Behind the router, on 10.77.1.0/24, where no multicast from the bridge arrives. */
  behindRouter?: boolean;
  /** Limit what it sends with a token bucket (tbf), e.g. "100mbit". */
  rate?: string;
}

/**
 * The LAN: a bridge in its own namespace, each host a namespace with a veth to it. With
 * a host behind the router, a router namespace joins 10.77.0.0/24 (as 10.77.0.254) and
 * 10.77.1.0/24 (as 10.77.1.1) and forwards unicast only, as a router without multicast
 * routing does; hosts on the bridge reach 10.77.1.0/24 through it.
 */
export class NetnsLan {
  readonly #prefix: string;
  readonly #children: Child[] = [];

  /**
   * `igmpVersion`: the version the bridge's querier speaks (default 2, the Linux bridge's).
   * Set at creation: a host that heard a v2 query stays in v2 mode for minutes.
   */
  constructor(prefix: string, hosts: HostSpec[], opts: { igmpVersion?: 2 | 3 } = {}) {
    this.#prefix = prefix;
    removeNamespaces(prefix);
    try {
      this.#build(hosts, opts.igmpVersion ?? 2);
    } catch (e) {
      removeNamespaces(prefix);
      throw e;
    }
  }

  /** The namespace of host `name`. */
  ns(name: string): string {
    return this.#prefix + name;
  }

  #build(hosts: HostSpec[], igmpVersion: 2 | 3): void {
    const p = this.#prefix;
    const br = `${p}br`;
    ip("netns", "add", br);
    // With IGMP snooping and a querier, as on a managed switch: without a querier a Linux
    // bridge floods every group to every port, and here each port's copy costs this CPU.
    ip("-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1", "mcast_querier", "1", "mcast_igmp_version", String(igmpVersion));
    ip("-n", br, "link", "set", "br0", "up");
    let port = 0;
    const attach = (ns: string, address: string, prefixLen = 24) => {
      const peer = `p${port++}`;
      ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", br);
      ip("-n", br, "link", "set", peer, "master", "br0", "up");
      ip("-n", ns, "addr", "add", `${address}/${prefixLen}`, "dev", "eth0");
      ip("-n", ns, "link", "set", "eth0", "up");
    };
    const needsRouter = hosts.some((h) => h.behindRouter);
    if (needsRouter) {
      const rt = `${p}rt`;
      ip("netns", "add", rt);
      ip("-n", rt, "link", "set", "lo", "up");
      attach(rt, "10.77.0.254");
      run(["ip", "netns", "exec", rt, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
    for (const h of hosts) {
      const ns = p + h.name;
      ip("netns", "add", ns);
      ip("-n", ns, "link", "set", "lo", "up");
      if (h.behindRouter) {
        const rt = `${p}rt`;
        const leg = `r${port++}`;
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", leg, "netns", rt);
        ip("-n", rt, "addr", "add", "10.77.1.1/24", "dev", leg);
        ip("-n", rt, "link", "set", leg, "up");
        ip("-n", ns, "addr", "add", `${h.address}/24`, "dev", "eth0");
        ip("-n", ns, "link", "set", "eth0", "up");
        ip("-n", ns, "route", "add", "default", "via", "10.77.1.1");
      } else {
        attach(ns, h.address);
        if (needsRouter) ip("-n", ns, "route", "add", "10.77.1.0/24", "via", "10.77.0.254");
      }
      if (h.multicastRoute) ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0");
      if (h.rate) run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", h.rate, "burst", "256kb", "latency", "50ms"]);
    }
  }

  /** Starts `bun ...args` inside host `name`'s namespace (with `env` added); killed when the LAN is disposed. */
  bun(name: string, args: string[], env: Record<string, string | undefined> = {}): Child {
    const c = spawnChild(["ip", "netns", "exec", this.ns(name), process.execPath, ...args], env);
    this.#children.push(c);
    return c;
  }

  /** Kills what it started, then removes every namespace. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const c of this.#children) await c[Symbol.asyncDispose]();
    removeNamespaces(this.#prefix);
  }
}

/** Runs `tc ARGS` inside namespace `ns`; its output, or an error naming the command. */
export function tc(ns: string, ...args: string[]): string {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "tc", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tc ${args.join(" ")} in ${ns} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** The bridge port that leads to a host (the peer of its eth0): a qdisc there limits what reaches it. */
export function bridgePort(lan: NetnsLan, host: string): string {
  const [mine] = JSON.parse(ip("-n", lan.ns(host), "-j", "link", "show", "dev", "eth0")) as { link_index: number }[];
  const ports = JSON.parse(ip("-n", lan.ns("br"), "-j", "link", "show")) as { ifindex: number; ifname: string }[];
  const port = ports.find((p) => p.ifindex === mine?.link_index);
  if (!port) throw new Error(`no bridge port for ${host}`);
  return port.ifname;
}
