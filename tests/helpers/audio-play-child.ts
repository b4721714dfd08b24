/**
 * A viewer's audio on its own, in real time: `bun audio-play-child.ts OUT SECONDS`
 * plays SECONDS of the test beep to `--audio-out` OUT, each packet pushed when its
 * capture time (now-based) plus 5 ms has come, as a network would deliver it. Prints
 * `beep CAPTUREDAT PLAYOUT` for each beep onset at each push from shortly before
 * its packet until it has been heard (µs, PLAYOUT being playoutTimeOf then), and `done` when all are played; then closes the output.
 */
import { AudioPlayer } from "../../lib/audio/audio-player.ts";
import { DEFAULT_AUDIO_FORMAT } from "../../lib/wire/audio-packet.ts";
import { parseAudioOut } from "../../lib/audio/audio-output.ts";
import { createLogger, stderrSink } from "../../lib/log/logger.ts";
import { nowMicros } from "../../lib/wire/frame.ts";
import { opusPackets } from "./opus-packets.ts";

const [out = "none", seconds = "3"] = process.argv.slice(2);
const spec = parseAudioOut(out);
if ("problem" in spec) throw new Error(spec.problem);
const log = createLogger("child", [stderrSink]);
const made = await opusPackets({ seconds: Number(seconds) });
const player = await AudioPlayer.open({ format: DEFAULT_AUDIO_FORMAT, output: spec, log });
// Capture times from the next whole second, so the beeps start at capturedAt % 1e6 == 0 like the server's.
const start = (Math.floor(nowMicros() / 1e6) + 1) * 1e6;
const packets = made.map((p, i) => ({ ...p, capturedAt: start + i * 20_000 }));
const beeps = packets.filter((p) => p.capturedAt % 1_000_000 === 0).map((p) => p.capturedAt);
for (const p of packets) {
  const due = p.capturedAt + 5000;
  const wait = (due - nowMicros()) / 1000;
  if (wait > 0) await Bun.sleep(wait);
  player.push(p, nowMicros());
  // Each beep's playout time as it stands at every push until it is heard (a push may move it).
  for (const c of beeps) {
    const t = player.playoutTimeOf(c)!;
    if (c <= p.capturedAt + 200_000 && t > nowMicros() - 50_000) console.log(`beep ${c} ${t}`);
  }
}
// Until the last packet has been heard.
const end = player.playoutTimeOf(packets.at(-1)!.capturedAt + 20_000)!;
await Bun.sleep(Math.max(0, (end - nowMicros()) / 1000) + 100);
console.log(`done ${JSON.stringify(player.stats)}`);
await player.close();
