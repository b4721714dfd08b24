// Token guessing from more addresses than the lockout table holds: a real server with
// the default lockout, and guessers connecting from thousands of 127.x.y.z addresses
// (Linux routes all of 127.0.0.0/8 to loopback, no setup needed). Prints guesses made
// and guesses evaluated per second, and how long a viewer that watched before takes to
// get in while the flood runs.
//   bun bench/auth-flood.ts [--addresses 5000] [--seconds 20] [--concurrency 64]
import mri from "mri";
import { createLogger } from "../lib/log/logger.ts";
import { tokenKey } from "../lib/net/session-keys.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { flood, guessToken, loopbackAddresses } from "../tests/helpers/token-guesser.ts";

const args = mri(process.argv.slice(2), { string: ["addresses", "seconds", "concurrency"] });
const addressCount = Number(args.addresses ?? 5000);
const seconds = Number(args.seconds ?? 20);
const concurrency = Number(args.concurrency ?? 64);

const right = tokenKey("auth flood bench: the right token");
const wrong = tokenKey("auth flood bench: a wrong guess");
const server = await StreamServer.start({
  port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 32, log: createLogger("server", []), stream: { width: 320, height: 240, fps: 30 }, token: right,
});
try {
  if ((await guessToken(server.port, "127.0.0.1", right)).kind !== "welcome") throw new Error("the viewer was not welcomed before the flood");
  const addresses = loopbackAddresses(addressCount, 250);
  const started = performance.now();
  let stop = false;
  const running = flood(server.port, addresses, wrong, concurrency, () => stop || performance.now() - started > seconds * 1000);
  // Halfway: the viewer that watched before connects, as a viewer restarting would.
  await Bun.sleep((seconds * 1000) / 2);
  const t0 = performance.now();
  const viewer = await guessToken(server.port, "127.0.0.1", right);
  const viewerMs = performance.now() - t0;
  const counts = await running;
  stop = true;
  const elapsed = (performance.now() - started) / 1000;
  await Bun.sleep(200); // the server's counters are synced on its 100 ms tick
  const s = server.stats;
  const evaluated = s.authProofsEvaluated - 2;
  console.log(`addresses=${addressCount} seconds=${elapsed.toFixed(1)} concurrency=${concurrency}`);
  console.log(`guesses made=${counts.attempts} (${(counts.attempts / elapsed).toFixed(0)}/s) welcomed=${counts.welcomed} refused=${counts.refused} closed=${counts.closed}`);
  console.log(`guesses evaluated=${evaluated} (${(evaluated / elapsed).toFixed(2)}/s) refusedLocked=${s.authLockedRefusals} tableRefused=${s.authTableRefused}`);
  console.log(`viewer that watched before, mid-flood: ${viewer.kind} in ${viewerMs.toFixed(0)} ms`);
} finally {
  await server.stop();
}
