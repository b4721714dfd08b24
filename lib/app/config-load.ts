import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { readableByOthers } from "../net/token.ts";
import { ConfigError, parseConfigText } from "./config-file.ts";
import type { Command, ConfigLoader, Flag, FlagTable, OperandTable, Preset } from "./flags.ts";

/** The largest config file read: a few dozen lines are a few kilobytes; anything near this is not one. */
export const MAX_CONFIG_BYTES = 64 * 1024;

/** A ConfigLoader that also keeps what the program should say about the file it read, once it has a log. */
export interface ConfigFileLoader extends ConfigLoader {
  /** A file holding a secret (a token, a URL's password) that other users can read. */
  readonly warnings: string[];
}

/** Reads `--config FILE` for `cmd`: the file's settings, or a ConfigError (exit 2) naming the file and why. */
export function configLoader(cmd: Command<FlagTable, OperandTable>): ConfigFileLoader {
  const warnings: string[] = [];
  const load = (path: string): Preset => {
    const preset = parseConfigText(cmd, readConfigFile(path), path);
    const secrets = secretKeys(cmd, preset);
    if (secrets.length > 0 && readableByOthers(path)) {
      warnings.push(`the config file ${path} holds a secret (${secrets.join(", ")}) and can be read by other users of this machine (chmod 600 ${path}, or use token-file)`);
    }
    return preset;
  };
  return Object.assign(load, { warnings });
}

/** The keys of `preset` whose values --print-config would hide. */
function secretKeys(cmd: Command<FlagTable, OperandTable>, preset: Preset): string[] {
  const keys: string[] = [];
  for (const [key, value] of Object.entries(preset.flags)) {
    const flag = cmd.flags[key] as Flag | undefined;
    if (flag?.kind !== "value" || !flag.redact || value === null || value === undefined) continue;
    const texts = (Array.isArray(value) ? value : [value]).map(String);
    if (texts.some((t) => flag.redact!(t) !== t)) keys.push(flag.name);
  }
  return keys;
}

/** The text of a config file: at most MAX_CONFIG_BYTES of UTF-8, else a ConfigError saying what is wrong. */
export function readConfigFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new ConfigError(`cannot read --config ${path}: ${why(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ConfigError(`cannot read --config ${path}: it is a folder, not a file`);
    // Read one byte past the cap, so a device or pipe that never ends is cut off too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, length, buf.length - length, null);
      } catch (e) {
        throw new ConfigError(`cannot read --config ${path}: ${why(e)}`);
      }
      if (n === 0) break;
      length += n;
      if (length > MAX_CONFIG_BYTES) throw new ConfigError(`cannot read --config ${path}: larger than ${MAX_CONFIG_BYTES / 1024}K; a config file is a few lines`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, length));
    } catch {
      throw new ConfigError(`cannot read --config ${path}: not UTF-8 text`);
    }
  } finally {
    closeSync(fd);
  }
}

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const words: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "it is a folder, not a file",
    ENOTDIR: "a part of the path is a file, not a folder",
    ELOOP: "too many symbolic links",
  };
  return code && words[code] ? `${words[code]} (${code})` : (e as Error).message;
}
