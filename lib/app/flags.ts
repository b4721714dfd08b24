/**
 * A program's command line as one table: each flag's name, kind, default, help line
 * and parser. Parsing (with mri), the --help text and the unknown-flag check all read
 * the same table, so a flag cannot be accepted without being documented, or the reverse.
 */
import mri from "mri";
import { UsageError } from "./cli.ts";
import { invocation } from "./run-main.ts";

/** A flag that is on or off. One that is on by default is documented as `--no-NAME`. */
export interface BooleanFlag {
  readonly kind: "boolean";
  readonly name: string;
  readonly default: boolean;
  readonly help: string;
  /** A one-letter alias, e.g. `h` for `--help`. */
  readonly short?: string;
  /** Only on the command line, never a key of a config file (--help, --print-config). */
  readonly cliOnly?: boolean;
}

/** A flag that takes a value; `parse` turns it into T or throws a UsageError naming `flag`. */
export interface ValueFlag<T> {
  readonly kind: "value";
  readonly name: string;
  /** The value in help lines: `N` in `--port N`. */
  readonly placeholder: string;
  readonly default: T;
  /**
   * One line, or several joined with "\n" (continuations are indented under the first).
   * It never writes the default: help appends `(default …)` from `defaultText`.
   */
  readonly help: string;
  /** The default as help writes it (`4M` for 4194304 bytes), or null when help names none. */
  readonly defaultText: string | null;
  readonly parse: (raw: string, flag: string) => T;
  /** Given more than once, every value is kept (T is then an array; parse gets one value and returns [it]). */
  readonly repeatable?: boolean;
  /**
   * For a repeatable flag: a check across all its values (how many, none alike), made
   * wherever they come from; throws a UsageError naming `flag`.
   */
  readonly check?: (values: never, flag: string) => void;
  /**
   * A value (one element, for a repeatable flag) written back as text `parse` reads: for
   * --print-config, which also tries String and keeps whichever reads back the same.
   */
  readonly format?: (value: never) => string;
  /** The text --print-config writes instead of a secret value (a token, a URL's password). */
  readonly redact?: (text: string) => string;
  /** Only on the command line, never a key of a config file (--config itself). */
  readonly cliOnly?: boolean;
}

/** One row of a flag table. */
export type Flag = BooleanFlag | ValueFlag<unknown>;

/** A program's flags, keyed by the name its code reads them under. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** What parsing a table yields: the parsed value (or default) of every flag. */
export type FlagValues<T extends FlagTable> = { -readonly [K in keyof T]: T[K] extends ValueFlag<infer V> ? V : boolean };

/** A positional argument, such as the client's HOST. */
export interface Operand<T> {
  readonly name: string;
  readonly parse: (raw: string, name: string) => T;
}

/** A program's positional arguments, in order, keyed like a flag table. */
export type OperandTable = Readonly<Record<string, Operand<unknown>>>;

/** The parsed positional arguments. */
export type OperandValues<T extends OperandTable> = { -readonly [K in keyof T]: T[K] extends Operand<infer V> ? V : never };

/** Everything one program accepts on its command line. */
export interface Command<F extends FlagTable, O extends OperandTable> {
  /** What the program is, for messages: "server" in "the server takes only options". */
  readonly role: string;
  /** The entry script, for the usage line (`bun server.ts`, or the executable's name). */
  readonly script: string;
  /** The paragraph under the usage line. */
  readonly about: string;
  readonly operands: O;
  /** Every flag, --version and --help included. */
  readonly flags: F & typeof STANDARD_FLAGS;
  /** A paragraph after the options, if any. */
  readonly footer?: string;
}

/** A table row for an on/off flag. */
export function booleanFlag(name: string, help: string, options: { default?: boolean; short?: string; cliOnly?: boolean } = {}): BooleanFlag {
  return { kind: "boolean", name, default: options.default ?? false, help, ...(options.short ? { short: options.short } : {}), ...(options.cliOnly ? { cliOnly: true } : {}) };
}

/** What a value flag may add to its row: how --print-config writes and hides its value, and whether a config file may set it. */
export interface ValueFlagExtras<T> {
  /** Never called with null or undefined: those are written as no value. */
  readonly format?: (value: NonNullable<T>) => string;
  readonly redact?: (text: string) => string;
  readonly cliOnly?: boolean;
}

/**
 * How help writes a flag's default: given the default, the words for it (e.g. a byte
 * size as `4M`, null as `off`), or null to name no default.
 */
export type ShowDefault<T> = (value: T) => string | null;

/** A number as it is, a word as it is; nothing for null, undefined or "" (help then names no default). */
function plainDefault(value: unknown): string | null {
  if (typeof value === "number") return String(value);
  if (typeof value === "string" && value !== "") return value;
  return null;
}

/**
 * A table row for a flag with a value. Help appends `(default …)` to `help`, written by
 * `show` (by default: numbers and words as they are, nothing for null, undefined or "").
 */
export function valueFlag<T>(name: string, placeholder: string, defaultValue: T, parse: (raw: string, flag: string) => T, help: string, show: ShowDefault<T> = plainDefault, extras: ValueFlagExtras<T> = {}): ValueFlag<T> {
  // Help's way of writing the default is --print-config's first try at any value.
  const format = extras.format ?? (show === plainDefault ? undefined : (v: T) => show(v) ?? "");
  return { kind: "value", name, placeholder, default: defaultValue, defaultText: show(defaultValue), parse, help, ...extras, ...(format ? { format } : {}) } as ValueFlag<T>;
}

/** What a repeatable flag may add to its row, beyond what any value flag may. */
export interface ListFlagExtras<T> extends ValueFlagExtras<T> {
  /** The values when none is given ([] unless said); help names them, written by `format`. */
  readonly default?: readonly T[];
  /** A check across all the values given (see ValueFlag.check). */
  readonly check?: (values: readonly T[], flag: string) => void;
}

/** A table row for a flag that may be given several times; its value is every one given, in order (its default when none). */
export function listFlag<T>(name: string, placeholder: string, parse: (raw: string, flag: string) => T, help: string, extras: ListFlagExtras<T> = {}): ValueFlag<T[]> {
  const { default: defaultValue = [], ...rest } = extras;
  const write = (extras.format ?? String) as (v: T) => string;
  const defaultText = defaultValue.length === 0 ? null : defaultValue.map(write).join(" ");
  return { kind: "value", name, placeholder, default: defaultValue, defaultText, parse: (raw, flag) => [parse(raw, flag)], help, repeatable: true, ...rest } as ValueFlag<T[]>;
}

/** A positional argument. */
export function operand<T>(name: string, parse: (raw: string, name: string) => T): Operand<T> {
  return { name, parse };
}

/** The flags every program has. */
export const STANDARD_FLAGS = {
  version: booleanFlag("version", "print versions of lancam, Bun, OpenCV and the ffmpeg used", { cliOnly: true }),
  help: booleanFlag("help", "print this help", { short: "h", cliOnly: true }),
} as const;

/** A program's command line: its own flags followed by --version and --help. */
export function defineCommand<F extends FlagTable, O extends OperandTable>(spec: Omit<Command<F, O>, "flags"> & { flags: F }): Command<F, O> {
  return { ...spec, flags: { ...spec.flags, ...STANDARD_FLAGS } };
}

/** What the user asked for. */
export type CommandLine<F extends FlagTable, O extends OperandTable> =
  | { readonly action: "help" }
  | { readonly action: "version" }
  | {
    readonly action: "run";
    readonly flags: FlagValues<F & typeof STANDARD_FLAGS>;
    readonly operands: OperandValues<O>;
    /** Each camera's flags, in camera order, for a command with a camera flag (see cameraFlags); none for any other. */
    readonly cameras: readonly FlagValues<F & typeof STANDARD_FLAGS>[];
  };

/** How a flag is written where it is documented: `--port`, `--no-window`. */
export function flagSpelling(flag: Flag): string {
  return flag.kind === "boolean" && flag.default ? `--no-${flag.name}` : `--${flag.name}`;
}

/** The documented spelling of every flag the command accepts, in table order. */
export function flagSpellings(cmd: Command<FlagTable, OperandTable>): string[] {
  return Object.values(cmd.flags).map(flagSpelling);
}

/**
 * The key of the flag that lists a server's cameras (`--source`, repeatable), and the
 * name of the config file's tables that give one camera each (`[[source]]`).
 */
export const CAMERA_FLAG = "source";

/**
 * Settings a config file gives, keyed like the command's tables, each value already
 * parsed by its row (so with the same limits as on the command line).
 */
export interface Preset {
  readonly flags: Readonly<Record<string, unknown>>;
  readonly operands: Readonly<Record<string, unknown>>;
  /** The file, for messages about what it lacks. */
  readonly file: string;
  /**
   * One per `[[source]]` table, in order: the flags it sets for its camera alone, keyed
   * like `flags` (the camera itself under CAMERA_FLAG, a list of one). `flags` then holds
   * every table's camera under CAMERA_FLAG too.
   */
  readonly cameras?: readonly Readonly<Record<string, unknown>>[];
}

/** Reads the file `--config` names into a Preset, or throws a UsageError naming the file, line and key. */
export type ConfigLoader = (path: string) => Preset;

/**
 * Parses `argv` against the command's table. Throws UsageError for an unknown flag,
 * `--no-X` of a flag that takes a value, a flag given twice, a missing or bad value,
 * or the wrong number of positional arguments. With a `config` row and `--config FILE`,
 * `loadConfig` reads FILE: what the command line leaves out comes from it, and what it
 * leaves out too from the table's defaults.
 */
export function parseCommandLine<F extends FlagTable, O extends OperandTable>(cmd: Command<F, O>, argv: readonly string[], loadConfig?: ConfigLoader): CommandLine<F, O> {
  const rows = Object.entries(cmd.flags) as [string, Flag][];
  const known = new Set<string>();
  const alias: Record<string, string> = {};
  for (const [, flag] of rows) {
    known.add(flag.name);
    if (flag.kind === "boolean" && flag.short) {
      known.add(flag.short);
      alias[flag.short] = flag.name;
    }
  }
  const args = mri([...argv], {
    string: rows.filter(([, f]) => f.kind === "value").map(([, f]) => f.name),
    boolean: rows.filter(([, f]) => f.kind === "boolean").map(([, f]) => f.name),
    alias,
  });
  // Whoever asks for help gets it, whatever else is wrong on the line.
  if (isOn(args.help)) return { action: "help" };
  if (isOn(args.version)) return { action: "version" };

  for (const key of Object.keys(args)) {
    if (key === "_" || known.has(key)) continue;
    // mri reads `--no-foo` as foo=false: name the option the way the user wrote it.
    const written = args[key] === false ? `--no-${key}` : key.length === 1 ? `-${key}` : `--${key}`;
    throw new UsageError(`unknown option ${written}`);
  }

  const configRow = rows.find(([, f]) => f.kind === "value" && f.name === "config")?.[1] as ValueFlag<unknown> | undefined;
  let preset: Preset | null = null;
  if (configRow && args[configRow.name] !== undefined) {
    const path = readValue(configRow, args[configRow.name]);
    if (typeof path !== "string") throw new Error("the config row must parse to a path");
    if (!loadConfig) throw new Error(`${cmd.role}: --config given but no config loader wired`);
    preset = loadConfig(path);
  }

  const operands = parseOperands(cmd, args._.map(String), preset);
  const flags: Record<string, unknown> = {};
  for (const [key, flag] of rows) {
    const raw = args[flag.name];
    if (raw === undefined && preset && Object.hasOwn(preset.flags, key)) flags[key] = preset.flags[key];
    else flags[key] = flag.kind === "boolean" ? readBoolean(flag, raw) : readValue(flag, raw);
  }
  const onCommandLine = (key: string) => Object.hasOwn(cmd.flags, key) && args[(cmd.flags as FlagTable)[key]!.name] !== undefined;
  const cameras = cameraFlags(cmd, flags, preset, onCommandLine);
  type Values = FlagValues<F & typeof STANDARD_FLAGS>;
  return { action: "run", flags: flags as Values, operands, cameras: cameras as Values[] };
}

/**
 * Each camera's flags: all of the command's flags, one set per camera. From a config
 * file's `[[source]]` tables when it has them and the command line gives no --source:
 * a table's own keys over the file's top and the defaults, and the command line over
 * both, since a flag there is for every camera. Else one set per value of the camera
 * flag (the command line's, the file's top, or the default), each with the flags as
 * they are. None for a command without a repeatable camera flag.
 */
function cameraFlags(cmd: Command<FlagTable, OperandTable>, flags: Readonly<Record<string, unknown>>, preset: Preset | null, onCommandLine: (key: string) => boolean): Record<string, unknown>[] {
  const row = Object.hasOwn(cmd.flags, CAMERA_FLAG) ? cmd.flags[CAMERA_FLAG] : undefined;
  if (row?.kind !== "value" || !row.repeatable) return [];
  if (preset?.cameras && preset.cameras.length > 0 && !onCommandLine(CAMERA_FLAG)) {
    return preset.cameras.map((table) => ({ ...flags, ...Object.fromEntries(Object.entries(table).filter(([key]) => !onCommandLine(key))) }));
  }
  return (flags[CAMERA_FLAG] as unknown[]).map((camera) => ({ ...flags, [CAMERA_FLAG]: [camera] }));
}

function isOn(raw: unknown): boolean {
  return Array.isArray(raw) ? raw.at(-1) === true : raw === true;
}

function readBoolean(flag: BooleanFlag, raw: unknown): boolean {
  if (raw === undefined) return flag.default;
  // Given more than once, the last one counts, so a later flag can override an earlier one.
  return isOn(raw);
}

function readValue(flag: ValueFlag<unknown>, raw: unknown): unknown {
  const written = `--${flag.name}`;
  if (raw === undefined) return flag.default;
  if (raw === false || (Array.isArray(raw) && raw.includes(false))) {
    throw new UsageError(`${written} takes a value; --no-${flag.name} is not an option`);
  }
  if (Array.isArray(raw) && !flag.repeatable) throw new UsageError(`${written} given more than once`);
  const values = (Array.isArray(raw) ? raw : [raw]).map(String);
  return readTexts(flag, values, written);
}

/**
 * A value flag's value from its texts, as the command line and a config file both give
 * them: each checked by the row's own parser, so both sources keep the same limits.
 */
export function readTexts(flag: ValueFlag<unknown>, values: readonly string[], written: string): unknown {
  // mri gives "" for a flag at the end of the line or followed by another flag.
  if (values.some((s) => s.trim() === "")) throw new UsageError(`${written} needs a value`);
  if (!flag.repeatable && values.length !== 1) throw new UsageError(`${written} given more than once`);
  if (!flag.repeatable) return flag.parse(values[0]!, written);
  const all = values.flatMap((s) => flag.parse(s, written) as unknown[]);
  (flag.check as ((values: unknown[], flag: string) => void) | undefined)?.(all, written);
  return all;
}

/** The key a config file gives an operand under: `udpPort` is `udp-port`. */
export function operandKey(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function parseOperands<O extends OperandTable>(cmd: Command<FlagTable, O>, given: string[], preset: Preset | null): OperandValues<O> {
  const rows = Object.entries(cmd.operands) as [string, Operand<unknown>][];
  if (rows.length === 0 && given.length > 0) throw new UsageError(`unexpected argument ${given[0]}: the ${cmd.role} takes only options`);
  const names = rows.map(([, o]) => o.name).join(" ");
  const got = `got ${given.length} argument${given.length === 1 ? "" : "s"}`;
  if (given.length > rows.length) throw new UsageError(`expected ${names}, ${got}`);
  const values: Record<string, unknown> = {};
  // Those given come first, in order; a config file may give the rest.
  for (const [i, [key, op]] of rows.entries()) {
    if (i < given.length) values[key] = op.parse(given[i]!, op.name);
    else if (preset && Object.hasOwn(preset.operands, key)) values[key] = preset.operands[key];
    else if (preset) throw new UsageError(`expected ${names}, ${got}, and ${preset.file} has no ${operandKey(key)}`);
    else throw new UsageError(`expected ${names}, ${got}`);
  }
  return values as OperandValues<O>;
}

/** Column where help text starts, after the flag and its placeholder. */
const HELP_COLUMN = 23;

/** The `--help` text: usage line, about paragraph, one row per flag (with its default), footer. */
export function helpText(cmd: Command<FlagTable, OperandTable>): string {
  const operands = Object.values(cmd.operands).map((o) => `${o.name} `).join("");
  const rows = Object.values(cmd.flags).map(helpRow);
  const footer = cmd.footer ? `\n${cmd.footer}\n` : "";
  return `Usage: ${invocation(cmd.script)} ${operands}[options]\n\n${cmd.about}\n\nOptions:\n${rows.join("\n")}\n${footer}`;
}

function helpRow(flag: Flag): string {
  const spelled = flag.kind === "value" ? `--${flag.name} ${flag.placeholder}` : flagSpelling(flag);
  const head = `  ${flag.kind === "boolean" && flag.short ? `-${flag.short}, ` : ""}${spelled}`;
  const help = flag.kind === "value" && flag.defaultText !== null ? `${flag.help} (default ${flag.defaultText})` : flag.help;
  const [first, ...more] = help.split("\n");
  const indent = " ".repeat(HELP_COLUMN);
  return [head + " ".repeat(Math.max(1, HELP_COLUMN - head.length)) + first, ...more.map((line) => indent + line)].join("\n");
}
