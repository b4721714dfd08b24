/**
 * `--print-config`: the settings in effect as a TOML config file, one key per flag with
 * its help above it, secrets replaced by REDACTED. Every value is written as text its
 * flag reads back to the same value (checked as it is written), so the output, given
 * back with --config, is the same settings. A server's cameras are written as one
 * `[[source]]` table each, at the end, with the settings each camera has.
 */
import { CAMERA_KEYS, CAMERA_NAME_KEY, REDACTED } from "./config-file.ts";
import { CAMERA_FLAG, operandKey, readTexts, type Command, type Flag, type FlagTable, type OperandTable, type ValueFlag } from "./flags.ts";
import { invocation } from "./run-main.ts";
import type { CameraSource } from "./source-flag.ts";

/** What --print-config writes: the parsed operands and flags of a run. */
export interface Settings {
  readonly flags: Readonly<Record<string, unknown>>;
  readonly operands: Readonly<Record<string, unknown>>;
  /** Each camera's flags, for a program with cameras (as parseCommandLine gives them). */
  readonly cameras?: readonly Readonly<Record<string, unknown>>[];
}

/** `settings` as a config file for `cmd`. */
export function printConfig(cmd: Command<FlagTable, OperandTable>, settings: Settings): string {
  const out = [
    `# lancam ${cmd.role} settings, written by \`${invocation(cmd.script)} --print-config\`.`,
    "# The keys are the flags' names (see --help); flags on the command line override them.",
    "# Use: --config FILE. A key left out, or commented out, keeps its default.",
  ];
  const operands = Object.entries(cmd.operands);
  if (operands.length > 0) out.push("");
  for (const [key, op] of operands) {
    const value = settings.operands[key];
    out.push(value === undefined ? `# ${operandKey(key)} = ${op.name}` : `${operandKey(key)} = ${tomlScalar(value, String(value))}`);
  }
  const cameras = settings.cameras ?? [];
  // Each camera's own settings go in its table, so each setting is written once.
  const perCamera = new Set(cameras.length > 0 ? Object.values(CAMERA_KEYS) : []);
  for (const [key, flag] of Object.entries(cmd.flags) as [string, Flag][]) {
    if (flag.cliOnly) continue;
    out.push("");
    // An on/off flag's help says what its other setting does (`--no-window`: do not open a window).
    const help = flag.kind === "boolean" ? `${flag.name} = ${!flag.default}: ${flag.help}` : flag.help;
    for (const line of help.split("\n")) out.push(`# ${line}`);
    if (flag.kind === "value" && perCamera.has(flag.name)) {
      out.push(`# ${flag.name} = ${flag.placeholder}: ${key === CAMERA_FLAG ? "the cameras are" : "per camera, in"} the [[${CAMERA_FLAG}]] tables below`);
      continue;
    }
    const value = settings.flags[key];
    if (flag.kind === "boolean") {
      out.push(`${flag.name} = ${value === true}`);
      continue;
    }
    out.push(valueLine(flag.name, flag, value));
  }
  if (cameras.length > 0) out.push(...cameraTables(cmd, cameras));
  return out.join("\n") + "\n";
}

/** `key = value`, or the key commented out with the flag's placeholder (and default) where there is no value to write. */
function valueLine(key: string, flag: ValueFlag<unknown>, value: unknown): string {
  const written = writeValue(flag, value);
  return written === null ? `# ${key} = ${flag.placeholder}${flag.defaultText !== null ? ` (default ${flag.defaultText})` : ""}` : `${key} = ${written}`;
}

/** One `[[source]]` table per camera: its name when it has one, its src, and every other key a table takes, with that camera's value. */
function cameraTables(cmd: Command<FlagTable, OperandTable>, cameras: readonly Readonly<Record<string, unknown>>[]): string[] {
  const rows = new Map<string, [string, ValueFlag<unknown>]>();
  for (const [key, flag] of Object.entries(cmd.flags) as [string, Flag][]) if (flag.kind === "value") rows.set(flag.name, [key, flag]);
  const out = [
    "",
    `# The cameras, one [[${CAMERA_FLAG}]] table each, numbered from 0 in this order. A table's keys`,
    `# are for its camera alone, and it ends where the next [[${CAMERA_FLAG}]] starts.`,
  ];
  for (const [index, camera] of cameras.entries()) {
    if (index > 0) out.push("");
    out.push(`[[${CAMERA_FLAG}]]`);
    for (const [tableKey, flagName] of Object.entries(CAMERA_KEYS)) {
      const row = rows.get(flagName);
      if (!row) continue;
      const [key, flag] = row;
      if (key !== CAMERA_FLAG) {
        out.push(valueLine(tableKey, flag, camera[key]));
        continue;
      }
      // The name in its own key; src the source alone.
      const source = (camera[key] as CameraSource[])[0]!;
      if (source.name !== null) out.push(`${CAMERA_NAME_KEY} = ${tomlString(source.name)}`);
      const unnamed = { ...source, name: null };
      out.push(`${tableKey} = ${writeOne(flag, unnamed, [unnamed])}`);
    }
  }
  return out;
}

/**
 * The TOML for a value flag's value, or null where there is nothing to write: no value
 * (off, unset), an empty list, or a default only words say (`0`: no limit). A value
 * other than the default that cannot be written is a bug in the flag's row, and throws.
 */
function writeValue(flag: ValueFlag<unknown>, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (flag.repeatable) {
    const items = value as unknown[];
    if (items.length === 0) return null;
    return `[${items.map((item) => writeOne(flag, item, [item])).join(", ")}]`;
  }
  const text = textFor(flag, value, value);
  if (text === null) {
    if (Bun.deepEquals(value, flag.default)) return null;
    throw new Error(`--${flag.name}: no text reads back as its value ${JSON.stringify(value)}; give its row a format`);
  }
  return tomlScalar(value, redacted(flag, text));
}

function writeOne(flag: ValueFlag<unknown>, item: unknown, expected: unknown): string {
  const text = textFor(flag, item, expected);
  if (text === null) throw new Error(`--${flag.name}: no text reads back as ${JSON.stringify(item)}; give its row a format`);
  return tomlString(redacted(flag, text));
}

/** The first of the row's format and String whose text the flag reads back as `expected`. */
function textFor(flag: ValueFlag<unknown>, value: unknown, expected: unknown): string | null {
  const format = flag.format as ((v: unknown) => string) | undefined;
  for (const write of format ? [format, String] : [String]) {
    let text: string;
    try {
      text = write(value);
      if (Bun.deepEquals(readTexts(flag, [text], `--${flag.name}`), flag.repeatable ? expected : value)) return text;
    } catch {
      // Not this way of writing it: try the next.
    }
  }
  return null;
}

function redacted(flag: ValueFlag<unknown>, text: string): string {
  return flag.redact ? flag.redact(text) : text;
}

/** A number as a TOML number where its text is the number's own; anything else as a string. */
function tomlScalar(value: unknown, text: string): string {
  return typeof value === "number" && Number.isFinite(value) && text === String(value) ? text : tomlString(text);
}

/** A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped too. */
export function tomlString(text: string): string {
  return JSON.stringify(text).replace(/\x7f/g, "\\u007f");
}
