import { UserError } from "../errors/user-error.ts";
import { MAX_PICTURE, MIN_PICTURE_SIDE } from "../native/cv.ts";

/** A bad command line: the message is printed with a pointer to --help, and exit code 2. */
export class UsageError extends UserError {
  override name = "UsageError";
}

/** What mri hands over for one flag: a string, or an array when the flag was given twice. */
export type Raw = string | number | boolean | string[] | undefined;

/**
 * How a flag or operand is named in messages: `--port` stays, `port` becomes `--port`,
 * and an operand written in capitals (`PORT`) stays as it is.
 */
export function flagLabel(flag: string): string {
  return flag.startsWith("-") || flag === flag.toUpperCase() ? flag : `--${flag}`;
}

function one(name: string, raw: Raw): string {
  if (Array.isArray(raw)) throw new UsageError(`${name} given more than once`);
  if (raw === true || raw === false || raw === undefined) throw new UsageError(`${name} needs a value`);
  return String(raw).trim();
}

/** The qualities a JPEG encoder takes. */
export const JPEG_QUALITY = { min: 1, max: 100 } as const;

/** An integer in [min, max]; `--quality=0` reads `invalid --quality=0: expected an integer 1..100`. */
export function parseInteger(flag: string, raw: Raw, min: number, max: number): number {
  const name = flagLabel(flag);
  const s = one(name, raw);
  const n = /^[+-]?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`invalid ${name}=${s}: expected an integer ${min}..${max}`);
  }
  return n;
}

/** A decimal number in [min, max]. */
export function parseNumber(flag: string, raw: Raw, min: number, max: number): number {
  const name = flagLabel(flag);
  const s = one(name, raw);
  const n = /^[+-]?(\d+\.?\d*|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`invalid ${name}=${s}: expected a number ${min}..${max}`);
  }
  return n;
}

/** A TCP/UDP port; 0 means "pick a free one" where `allowZero`. */
export function parsePort(flag: string, raw: Raw, allowZero = true): number {
  const name = flagLabel(flag);
  const s = one(name, raw);
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  const min = allowZero ? 0 : 1;
  if (!Number.isSafeInteger(n) || n < min || n > 65535) {
    throw new UsageError(`invalid ${name}=${s}: expected a port ${min}..65535`);
  }
  return n;
}

/** `WxH`, each side even and within MIN_PICTURE_SIDE..MAX_PICTURE (16x16..7680x4320). */
export function parseSize(flag: string, raw: Raw): { width: number; height: number } {
  const name = flagLabel(flag);
  const s = one(name, raw);
  const m = /^(\d{1,5})x(\d{1,5})$/i.exec(s);
  const width = m ? Number(m[1]) : NaN;
  const height = m ? Number(m[2]) : NaN;
  const min = MIN_PICTURE_SIDE;
  const max = MAX_PICTURE;
  if (!m || width < min || width > max.width || height < min || height > max.height || width % 2 || height % 2) {
    throw new UsageError(`invalid ${name}=${s}: expected WIDTHxHEIGHT with even sides, ${min}x${min}..${max.width}x${max.height}`);
  }
  return { width, height };
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** A byte size like `20G`, `500M`, `1024` (binary units, optional trailing B), at most `max`. */
export function parseByteSize(flag: string, raw: Raw, max = Number.MAX_SAFE_INTEGER): number {
  const name = flagLabel(flag);
  const s = one(name, raw);
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(s);
  const n = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!m || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`invalid ${name}=${s}: expected a size such as 500M, 20G or 1T`);
  }
  if (n > max) throw new UsageError(`invalid ${name}=${s}: at most ${formatByteSize(max)}`);
  return Math.floor(n);
}

/** A byte count the way parseByteSize reads it: 4194304 is `4M`; a count no unit divides stays as it is. */
export function formatByteSize(n: number): string {
  for (const [unit, size] of [["T", UNITS.T!], ["G", UNITS.G!], ["M", UNITS.M!], ["K", UNITS.K!]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(flag: string, raw: Raw, choices: readonly T[]): T {
  const name = flagLabel(flag);
  const s = one(name, raw);
  if (!(choices as readonly string[]).includes(s)) {
    throw new UsageError(`invalid ${name}=${s}: expected one of ${choices.join(", ")}`);
  }
  return s as T;
}
