/**
 * The server's cameras as it opens them: what each captures, what it is called, and the
 * capture settings each has. The flags and the config file have already been read and
 * checked (at most MAX_CAMERAS, no name twice) by then; this only lays them out.
 */
import { hostname } from "node:os";
import type { OverlayOptions, SourceSpec } from "../capture/capture.ts";
import type { CommandLine } from "./flags.ts";
import { overlaySettings, SERVER_COMMAND } from "./server-flags.ts";

/** One camera of the server. */
export interface CameraSetting {
  /** 0..MAX_CAMERAS-1, in the order given. */
  index: number;
  /** The given name, or String(index) when none. */
  name: string;
  /** A name was given. */
  named: boolean;
  spec: SourceSpec;
  size: { width: number; height: number } | undefined;
  fps: number | undefined;
  quality: number;
  /** What the capture draws on the picture, or null without --overlay. */
  overlay: OverlayOptions | null;
}

/** What cameraSettings reads of the server's parsed command line. */
export type ServerRun = Pick<Extract<CommandLine<typeof SERVER_COMMAND.flags, typeof SERVER_COMMAND.operands>, { action: "run" }>, "cameras">;

/**
 * Every camera, in order. Each one's settings are, first found: the command line's flag
 * (for every camera), its `[[source]]` table's key, the config file's top-level key, the
 * default. A --source on the command line replaces the file's tables, and with them
 * their own keys. `host` fills the overlay's {host}.
 */
export function cameraSettings(cli: ServerRun, host = hostname()): CameraSetting[] {
  return cli.cameras.map((flags, index) => {
    const source = flags.source[0]!;
    const name = source.name ?? String(index);
    return {
      index, name, named: source.name !== null, spec: source.spec,
      size: flags.size, fps: flags.fps, quality: flags.quality,
      overlay: overlaySettings(flags, name, host) ?? null,
    };
  });
}
