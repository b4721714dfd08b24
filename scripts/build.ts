#!/usr/bin/env bun
// Builds the single-file executables dist/lancam-server and dist/lancam-client for this
// platform with `bun build --compile`. The OpenCV addon is embedded through cv.ts's static
// require; ffmpeg is embedded when there is one to embed (see ffmpegToEmbed).
//   bun run build                      # setup (addon included), then this script
//   bun scripts/build.ts [--outdir DIR]
//   LANCAM_EMBED_FFMPEG=/path/to/ffmpeg bun scripts/build.ts   # embed that ffmpeg
//   LANCAM_EMBED_FFMPEG=none bun scripts/build.ts              # embed none
import type { BunPlugin } from "bun";
import mri from "mri";
import { accessSync, constants, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const ADDON = join(ROOT, "native/build/lancam.node");
// The one line of lib/media/embedded-ffmpeg.ts the plugin replaces.
const EMBED_LINE = /^const EMBEDDED: EmbeddedBinary \| null = null;$/m;
const EXE = process.platform === "win32" ? ".exe" : "";
const TARGETS = [
  { entry: "server.ts", name: `lancam-server${EXE}` },
  { entry: "client.ts", name: `lancam-client${EXE}` },
];

const HELP = `Usage: bun scripts/build.ts [--outdir DIR]

Builds lancam-server and lancam-client, single executables for this platform,
into DIR (default dist). Run \`bash native/build.sh\` first (\`bun run build\` does).

Environment:
  LANCAM_EMBED_FFMPEG=PATH   embed this ffmpeg (default: ffmpeg-static's binary when installed)
  LANCAM_EMBED_FFMPEG=none   embed no ffmpeg: the executables use $FFMPEG_BIN or ffmpeg on PATH
`;

class BuildError extends Error {
  override name = "BuildError";
}

/** The ffmpeg to embed and why, or null for none. */
function ffmpegToEmbed(env: Record<string, string | undefined>): { path: string; from: string } | null {
  const asked = env.LANCAM_EMBED_FFMPEG;
  if (asked === "none") return null;
  if (asked) {
    const path = resolve(asked);
    if (!isExecutableFile(path)) throw new BuildError(`LANCAM_EMBED_FFMPEG=${asked} is not an executable file`);
    return { path, from: "LANCAM_EMBED_FFMPEG" };
  }
  // ffmpeg-static's own index.js would answer $FFMPEG_BIN when set: look at the file itself.
  const fromStatic = join(ROOT, "node_modules/ffmpeg-static", `ffmpeg${EXE}`);
  return isExecutableFile(fromStatic) ? { path: fromStatic, from: "ffmpeg-static" } : null;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Replaces lib/media/embedded-ffmpeg.ts's "nothing embedded" with an embedded copy of `binary`. */
function embedFfmpegPlugin(binary: string): BunPlugin {
  const bytes = readFileSync(binary);
  const hash = new Bun.CryptoHasher("sha256").update(bytes).digest("hex").slice(0, 12);
  return {
    name: "lancam-embed-ffmpeg",
    setup(build) {
      build.onLoad({ filter: /[\\/]lib[\\/]media[\\/]embedded-ffmpeg\.ts$/ }, async (args) => {
        const source = await Bun.file(args.path).text();
        if (!EMBED_LINE.test(source)) throw new BuildError(`${args.path} no longer has the line the build replaces: ${EMBED_LINE.source}`);
        const embedded =
          `import embeddedFfmpegPath from ${JSON.stringify(binary)} with { type: "file" };\n` +
          `const EMBEDDED: EmbeddedBinary | null = { path: embeddedFfmpegPath, size: ${bytes.length}, hash: ${JSON.stringify(hash)} };`;
        return { loader: "ts", contents: source.replace(EMBED_LINE, embedded) };
      });
    },
  };
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

async function buildOne(entry: string, outfile: string, plugins: BunPlugin[], embedsFfmpeg: string | null): Promise<void> {
  const result = await Bun.build({
    entrypoints: [join(ROOT, entry)],
    target: "bun",
    // Precompiled bytecode halves the bare start (--help: ~13 ms to ~6 ms) for ~1.4 MB.
    format: "esm",
    bytecode: true,
    compile: {
      outfile,
      // A lab machine's working folder must not change how the executable behaves.
      autoloadDotenv: false,
      autoloadBunfig: false,
    },
    plugins,
    metafile: true,
    throw: false,
  });
  if (!result.success) {
    throw new BuildError(`bun build of ${entry} failed:\n${result.logs.map((l) => `  ${String(l)}`).join("\n")}`);
  }
  // A computed require() path would build fine and fail on the lab machine: check the inputs.
  // The metafile names inputs relative to the working folder.
  const inputs = Object.keys(result.metafile?.inputs ?? {}).map((p) => resolve(p));
  if (!inputs.includes(ADDON)) throw new BuildError(`${entry}: the OpenCV addon was not embedded (lib/native/cv.ts must require it by a literal path)`);
  if (embedsFfmpeg && !inputs.includes(embedsFfmpeg)) throw new BuildError(`${entry}: ffmpeg ${embedsFfmpeg} was not embedded`);
}

async function main(): Promise<number> {
  const args = mri(process.argv.slice(2), { string: ["outdir"], boolean: ["help"], alias: { h: "help" } });
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const unknown = Object.keys(args).filter((k) => !["_", "outdir", "help", "h"].includes(k));
  if (unknown.length > 0 || args._.length > 0) {
    process.stderr.write(`build: unexpected ${unknown.length > 0 ? `option --${unknown[0]}` : `argument ${args._[0]}`}\n${HELP}`);
    return 2;
  }
  const outdir = resolve(args.outdir ?? join(ROOT, "dist"));
  if (!isFile(ADDON)) {
    throw new BuildError("the OpenCV addon native/build/lancam.node is not built: run `bash native/build.sh` first (`bun run build` runs it)");
  }
  const ffmpeg = ffmpegToEmbed(process.env);
  const plugins = ffmpeg ? [embedFfmpegPlugin(ffmpeg.path)] : [];
  say(`bun ${Bun.version}, ${process.platform}-${process.arch}, addon ${relative(ROOT, ADDON)} (${megabytes(statSync(ADDON).size)})`);
  say(ffmpeg
    ? `embedding ffmpeg ${ffmpeg.path} (${megabytes(statSync(ffmpeg.path).size)}, from ${ffmpeg.from})`
    : `embedding no ffmpeg (${process.env.LANCAM_EMBED_FFMPEG === "none" ? "LANCAM_EMBED_FFMPEG=none" : "no ffmpeg-static binary, LANCAM_EMBED_FFMPEG unset"}): ` +
      "the executables use $FFMPEG_BIN or ffmpeg on PATH");
  mkdirSync(outdir, { recursive: true });
  for (const { entry, name } of TARGETS) {
    const outfile = join(outdir, name);
    const started = performance.now();
    say(`building ${basename(outfile)} from ${entry} ...`);
    await buildOne(entry, outfile, plugins, ffmpeg?.path ?? null);
    say(`built ${outfile}: ${megabytes(statSync(outfile).size)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return 0;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function say(line: string): void {
  process.stderr.write(`build: ${line}\n`);
}

try {
  process.exit(await main());
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  process.stderr.write(`build: error: ${e.message}\n`);
  process.exit(1);
}
