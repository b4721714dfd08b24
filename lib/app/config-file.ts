/**
 * A config file's text into settings, or one precise error. The keys are the flags'
 * names as written on the command line (`max-clients = 8`, `repair = false`) and every
 * value goes through its flag's own parser, so the file and the command line have one
 * set of names and limits: the flag tables. The server's cameras may also be written as
 * `[[source]]` tables, one per camera (`name`, `src`, and its own `size`, `fps`, ...).
 */
import { cameraNameProblem, MAX_CAMERAS } from "../wire/camera-name.ts";
import { UsageError } from "./cli.ts";
import { CAMERA_FLAG, operandKey, readTexts, type Command, type Flag, type FlagTable, type Operand, type OperandTable, type Preset, type ValueFlag } from "./flags.ts";
import type { CameraSource } from "./source-flag.ts";
import { arrayTableLine, keyLines, topLine, type KeyLine } from "./toml-lines.ts";

/** A config file that cannot be used: names the file, the line and the key; exit 2 like any usage error. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
}

/** What --print-config writes in place of a secret; a file that still holds it is refused. */
export const REDACTED = "<redacted>";

/**
 * Keys of a `[[source]]` table, but `name`, and the flag each sets for its camera. A key
 * is taken only while the program has a flag of that name, so a per-camera setting
 * arrives with its flag.
 */
export const CAMERA_KEYS: Readonly<Record<string, string>> = { src: CAMERA_FLAG, size: "size", fps: "fps", quality: "quality", overlay: "overlay", "overlay-pos": "overlay-pos" };

/** The key of a `[[source]]` table that names its camera (as NAME= does on the command line). */
export const CAMERA_NAME_KEY = "name";

/**
 * The most `=` a config file may hold. Bun's TOML parser takes time that grows with the
 * square of a table's keys (8000 keys: a quarter of a second per parse); a config file
 * has a few dozen, and within this bound a parse takes milliseconds.
 */
export const MAX_CONFIG_KEYS = 2000;

/** Longest value text an error message repeats. */
const SHOWN_MAX = 60;

interface Problem {
  line: number;
  text: string;
}

/**
 * The settings `text` (the contents of `file`) gives `cmd`, each parsed by its flag's
 * row. Throws a ConfigError for bad TOML, an unknown key, a value of the wrong type or
 * a bad value; when there are several, the one on the earliest line.
 */
export function parseConfigText(cmd: Command<FlagTable, OperandTable>, text: string, file: string): Preset {
  tooManyKeys(text, file);
  let doc: Record<string, unknown>;
  try {
    doc = Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (e) {
    const why = tomlMessage(e);
    throw new ConfigError(`invalid ${file} line ${syntaxErrorLine(text, why)}: ${why}`);
  }
  const lines = keyLines(text);
  const rows = new Map<string, [string, Flag]>();
  for (const [key, flag] of Object.entries(cmd.flags)) rows.set(flag.name, [key, flag]);
  const operands = new Map<string, [string, Operand<unknown>]>();
  for (const [key, op] of Object.entries(cmd.operands)) operands.set(operandKey(key), [key, op]);

  const flags: Record<string, unknown> = {};
  const operandValues: Record<string, unknown> = {};
  let cameras: Record<string, unknown>[] | undefined;
  const problems: Problem[] = [];
  const at = (line: number | null) => line ?? 1;
  const cameraRow = rows.get(CAMERA_FLAG);
  const hasCameras = cameraRow?.[1].kind === "value" && cameraRow[1].repeatable === true;

  for (const [name, value] of Object.entries(doc)) {
    const line = at(topLine(lines, name));
    if (name === CAMERA_FLAG && hasCameras && isTableArray(value)) {
      const tables = cameraTables(value, lines, rows);
      problems.push(...tables.problems);
      cameras = tables.cameras;
      // The flag lists every table's camera, as --source would.
      flags[cameraRow![0]] = cameras.map((c) => (c[cameraRow![0]] as unknown[] | undefined)?.[0]);
      continue;
    }
    const header = lines.some((k) => k.header === "table" && k.path.length === 1 && k.path[0] === name);
    if (name === CAMERA_FLAG && hasCameras && isTable(value) && header) {
      problems.push({ line, text: `[${CAMERA_FLAG}] with one pair of brackets; write each camera as [[${CAMERA_FLAG}]]` });
      continue;
    }
    const op = operands.get(name);
    if (op) {
      const parsed = operandValue(op[1], value, name);
      if ("problem" in parsed) problems.push({ line, text: parsed.problem });
      else operandValues[op[0]] = parsed.value;
      continue;
    }
    const row = rows.get(name);
    if (!row) {
      problems.push({ line, text: unknownKey(name, value, [...rows.keys(), ...operands.keys()]) });
      continue;
    }
    if (row[1].cliOnly) {
      problems.push({ line, text: `${name}: only on the command line, not in a config file` });
      continue;
    }
    const parsed = flagValue(row[1], value, name);
    if ("problem" in parsed) problems.push({ line, text: parsed.problem });
    else flags[row[0]] = parsed.value;
  }
  const first = problems.sort((a, b) => a.line - b.line)[0];
  if (first) throw new ConfigError(`invalid ${file} line ${first.line}: ${first.text}`);
  return { flags, operands: operandValues, file, ...(cameras ? { cameras } : {}) };
}

/**
 * The `[[source]]` tables, one camera each: every table's keys parsed by the flags they
 * set, keyed like them (the camera under CAMERA_FLAG, a list of one, named by `name` or
 * by NAME= in `src`); problems for a table too many, a key no flag takes, a bad value,
 * a missing src and a name given twice.
 */
function cameraTables(tables: Record<string, unknown>[], lines: readonly KeyLine[], rows: Map<string, [string, Flag]>): { problems: Problem[]; cameras: Record<string, unknown>[] } {
  const problems: Problem[] = [];
  const line = (index: number, key?: string) => arrayTableLine(lines, CAMERA_FLAG, index, key) ?? 1;
  if (tables.length > MAX_CAMERAS) {
    problems.push({ line: line(MAX_CAMERAS), text: `a ${MAX_CAMERAS + 1}th [[${CAMERA_FLAG}]]: a server has at most ${MAX_CAMERAS} cameras` });
  }
  const keys = [CAMERA_NAME_KEY, ...Object.keys(CAMERA_KEYS).filter((k) => rows.has(CAMERA_KEYS[k]!))];
  /** Each name taken so far: its camera and line. */
  const named = new Map<string, { index: number; line: number }>();
  const cameras = tables.slice(0, MAX_CAMERAS).map((table, index) => {
    const where = `[[${CAMERA_FLAG}]] (camera ${index})`;
    const camera: Record<string, unknown> = {};
    if (!Object.hasOwn(table, "src")) problems.push({ line: line(index), text: `${where} has no src; give one, e.g. src = "camera:0"` });
    for (const [key, value] of Object.entries(table)) {
      if (key === CAMERA_NAME_KEY) continue;
      // Own keys only: a key such as __proto__ or constructor names nothing here.
      const row = Object.hasOwn(CAMERA_KEYS, key) ? rows.get(CAMERA_KEYS[key]!) : undefined;
      if (!row) {
        problems.push({ line: line(index, key), text: `unknown key ${key} in ${where}; it takes ${keys.join(", ")}` });
        continue;
      }
      // One value each, even for --source, which the command line repeats for more cameras.
      const parsed = Array.isArray(value)
        ? { problem: `${where} ${key} = ${showValue(value)}: wrong type: expected one value for --${row[1].name}${row[1].kind === "value" ? ` ${row[1].placeholder}` : ""}, not a list` }
        : flagValue(row[1], value, `${where} ${key}`);
      if ("problem" in parsed) problems.push({ line: line(index, key), text: parsed.problem });
      else camera[row[0]] = parsed.value;
    }
    const source = (camera[CAMERA_FLAG] as CameraSource[] | undefined)?.[0];
    const name = cameraName(table, where, line(index, CAMERA_NAME_KEY), problems);
    if (source && name !== null) {
      if (source.name !== null) {
        problems.push({ line: line(index, "src"), text: `${where} src = ${showValue(table.src)}: names the camera (${source.name}=) as ${CAMERA_NAME_KEY} does; give its name once` });
      } else camera[CAMERA_FLAG] = [{ ...source, name }];
    }
    const given = name ?? source?.name ?? null;
    if (given !== null) {
      const key = name !== null ? CAMERA_NAME_KEY : "src";
      const here = line(index, key);
      const before = named.get(given);
      if (before) problems.push({ line: here, text: `${where} ${key} = ${showValue(table[key])}: camera ${before.index} (line ${before.line}) is named ${given} too; give each camera its own name` });
      else named.set(given, { index, line: here });
    }
    return camera;
  });
  return { problems, cameras };
}

/** A table's `name`, or null without one (or with a bad one, which goes to `problems`). */
function cameraName(table: Record<string, unknown>, where: string, line: number, problems: Problem[]): string | null {
  if (!Object.hasOwn(table, CAMERA_NAME_KEY)) return null;
  const value = table[CAMERA_NAME_KEY];
  const shown = `${where} ${CAMERA_NAME_KEY} = ${showValue(value)}`;
  if (typeof value !== "string") {
    problems.push({ line, text: `${shown}: wrong type: expected text, e.g. ${CAMERA_NAME_KEY} = "board"` });
    return null;
  }
  const problem = cameraNameProblem(value);
  if (problem === null) return value;
  problems.push({ line, text: `${shown}: ${problem}` });
  return null;
}

/**
 * A flag's value from what the TOML gives: true or false for an on/off flag; for one
 * that takes a value, a string or number (a list of them where the flag is
 * repeatable), read as the command line's text is.
 */
export function flagValue(flag: Flag, value: unknown, label: string): { value: unknown } | { problem: string } {
  const shown = flag.kind === "value" && flag.redact ? label : `${label} = ${showValue(value)}`;
  if (flag.kind === "boolean") {
    return typeof value === "boolean" ? { value } : { problem: `${shown}: expected true or false` };
  }
  const texts = Array.isArray(value) && flag.repeatable ? value.map(scalarText) : [scalarText(value)];
  if (texts.some((t) => t === null)) {
    const what = flag.repeatable ? `a value for --${flag.name} ${flag.placeholder}, or a list of them` : `one value for --${flag.name} ${flag.placeholder}`;
    return { problem: `${shown}: wrong type: expected ${what}, not ${typeName(value)}` };
  }
  if (texts.some((t) => t!.includes(REDACTED))) {
    return { problem: `${label} = ${showValue(value)}: --print-config hid this secret; write the real value` };
  }
  let parsed: unknown;
  try {
    parsed = readTexts(flag, texts as string[], `--${flag.name}`);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return { problem: `${shown}: ${reason(e.message, flag)}` };
  }
  // A number is taken where the flag's value is one: `source = 0` is not camera 0 but a
  // file named 0, and `bind = 5` is no address; quoted, the text is plainly meant.
  const given = Array.isArray(value) ? value : [value];
  const got = Array.isArray(parsed) && flag.repeatable ? parsed : [parsed];
  if (given.some((v, i) => typeof v === "number" && typeof got[i] !== "number")) {
    return { problem: `${shown}: wrong type: expected text for --${flag.name} ${flag.placeholder}, e.g. ${label.split(" ").at(-1)} = "${texts[0]}"` };
  }
  return { value: parsed };
}

function operandValue(op: Operand<unknown>, value: unknown, key: string): { value: unknown } | { problem: string } {
  const shown = `${key} = ${showValue(value)}`;
  const text = scalarText(value);
  if (text === null) return { problem: `${shown}: wrong type: expected one ${op.name}, not ${typeName(value)}` };
  let parsed: unknown;
  try {
    parsed = op.parse(text, op.name);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return { problem: `${shown}: ${e.message.replace(new RegExp(`^invalid ${escapeRegExp(op.name)}=.*?: `), "")}` };
  }
  if (typeof value === "number" && typeof parsed !== "number") return { problem: `${shown}: wrong type: expected text, e.g. ${key} = "${text}"` };
  return { value: parsed };
}

/** A TOML type in words, for "not ..." in a wrong type's message. */
function typeName(value: unknown): string {
  if (typeof value === "boolean") return "true or false";
  if (Array.isArray(value)) return isTableArray(value) ? "tables" : "a list";
  if (isTable(value)) return "a table";
  if (typeof value === "object" && value !== null) return "a date or time";
  return typeof value;
}

/** The text of a string or number, as the command line would give it; null for any other TOML type. */
function scalarText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return null;
}

/** A flag parser's message without its `invalid --flag=VALUE: ` head, which the file's own message replaces. */
function reason(message: string, flag: ValueFlag<unknown>): string {
  const head = new RegExp(`^invalid --${escapeRegExp(flag.name)}(=[^\\n]*?)?: `);
  const m = head.exec(message);
  return m ? message.slice(m[0].length) : message;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A TOML value as an error message repeats it: strings quoted, long ones cut. */
export function showValue(value: unknown): string {
  let s: string;
  if (typeof value === "string") s = JSON.stringify(value);
  else if (Array.isArray(value)) s = `[${value.map(showValue).join(", ")}]`;
  else if (isTable(value)) s = "{...}";
  else s = String(value);
  return s.length > SHOWN_MAX ? `${s.slice(0, SHOWN_MAX - 1)}…` : s;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

function isTableArray(value: unknown): value is Record<string, unknown>[] {
  return Array.isArray(value) && value.length > 0 && value.every(isTable);
}

/** `unknown key X`, with the key meant when it is only spelled differently (`max_clients`, `no-repair`). */
function unknownKey(name: string, value: unknown, keys: string[]): string {
  const kind = isTable(value) || isTableArray(value) ? "table" : "key";
  const base = `unknown ${kind} ${kind === "table" ? `[${name}]` : name}`;
  const negated = /^no-(.+)$/.exec(name);
  if (negated && keys.includes(negated[1]!)) return `${base}; write ${negated[1]} = ${value === false ? "true" : "false"}`;
  const squash = (k: string) => k.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase().replace(/_/g, "-");
  const meant = keys.find((k) => k === squash(name));
  if (meant) return `${base}; the key is ${meant}`;
  if (kind === "table") return `${base}; settings go at the top of the file, keyed by the flags' names`;
  return `${base}; the keys are the flags' names, as in --help`;
}

function tomlMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return `TOML: ${message.replace(/^TOML Parse error: /, "")}`;
}

/** Refuses a text with more than MAX_CONFIG_KEYS `=`, naming the line of the first one too many. */
function tooManyKeys(text: string, file: string): void {
  let seen = 0;
  let line = 1;
  for (const c of text) {
    if (c === "\n") line++;
    else if (c === "=" && ++seen > MAX_CONFIG_KEYS) {
      throw new ConfigError(`invalid ${file} line ${line}: more than ${MAX_CONFIG_KEYS} keys; a config file has a few dozen`);
    }
  }
}

/**
 * The line a TOML syntax error is on. Bun's parser does not say, so: where a prefix of
 * the text starts to fail with the same message, found by halving (a dozen parses of a
 * file within MAX_CONFIG_KEYS). A prefix cut inside a value over several lines fails
 * too, but with another message, so it does not count.
 */
export function syntaxErrorLine(text: string, message: string): number {
  const lines = text.split("\n");
  const failsSo = (k: number): boolean => {
    try {
      // With its line end: a value cut off by the end of the text reads as another error.
      Bun.TOML.parse(`${lines.slice(0, k).join("\n")}\n`);
      return false;
    } catch (e) {
      return tomlMessage(e) === message;
    }
  };
  // Invariant: the prefix of `hi` lines fails so, that of `lo` lines does not (0 lines: nothing to fail).
  let lo = 0;
  let hi = lines.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (failsSo(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
