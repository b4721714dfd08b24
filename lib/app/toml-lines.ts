/**
 * Where each key of a TOML text stands. Bun's TOML parser gives values without
 * positions, and its errors without a line, yet a user fixing a config file needs the
 * line: this finds it. It reads only enough TOML to skip values (strings of all four
 * kinds, arrays and inline tables over several lines, comments); it never throws, and
 * on text that is not TOML it simply finds fewer keys.
 */

/** One key, or one `[table]` / `[[array of tables]]` header, and its 1-based line. */
export interface KeyLine {
  readonly line: number;
  /** The full path: the header's path, then the key's (dotted keys split). */
  readonly path: readonly string[];
  /** Set for a header line. */
  readonly header?: "table" | "array";
}

/** Every key and header of `text`, in order. */
export function keyLines(text: string): KeyLine[] {
  const out: KeyLine[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  let table: string[] = [];

  const blanks = () => {
    while (i < n && (text[i] === " " || text[i] === "\t")) i++;
  };
  const toLineEnd = () => {
    while (i < n && text[i] !== "\n") i++;
  };
  const quoted = (q: string): string => {
    let s = "";
    i++;
    while (i < n && text[i] !== q && text[i] !== "\n") {
      if (q === '"' && text[i] === "\\" && i + 1 < n) {
        s += text[i + 1];
        i += 2;
      } else s += text[i++];
    }
    if (text[i] === q) i++;
    return s;
  };
  const keyPart = (): string | null => {
    blanks();
    if (text[i] === '"' || text[i] === "'") return quoted(text[i]!);
    const start = i;
    while (i < n && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
    return i > start ? text.slice(start, i) : null;
  };
  const keyPath = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      const part = keyPart();
      if (part === null) break;
      parts.push(part);
      blanks();
      if (text[i] !== ".") break;
      i++;
    }
    return parts;
  };
  const skipString = () => {
    const q = text[i]!;
    const triple = q.repeat(3);
    if (text.startsWith(triple, i)) {
      i += 3;
      while (i < n && !text.startsWith(triple, i)) {
        if (q === '"' && text[i] === "\\") i++;
        if (text[i] === "\n") line++;
        i++;
      }
      i += 3;
      // Up to two quotes may end the string's content right before its closing three.
      while (text[i] === q) i++;
    } else quoted(q);
  };
  const skipValue = () => {
    let depth = 0;
    while (i < n) {
      const c = text[i]!;
      if (c === '"' || c === "'") {
        skipString();
        continue;
      }
      if (c === "#") {
        toLineEnd();
        continue;
      }
      if (c === "[" || c === "{") depth++;
      else if (c === "]" || c === "}") depth--;
      else if (c === "\n") {
        if (depth <= 0) return;
        line++;
      }
      i++;
    }
  };

  while (i < n) {
    blanks();
    const c = text[i];
    if (c === "\n") {
      line++;
      i++;
      continue;
    }
    if (c === "\r") {
      i++;
      continue;
    }
    if (c === "#") {
      toLineEnd();
      continue;
    }
    if (c === "[") {
      const array = text[i + 1] === "[";
      i += array ? 2 : 1;
      table = keyPath();
      out.push({ line, path: table, header: array ? "array" : "table" });
      toLineEnd();
      continue;
    }
    const start = i;
    const path = keyPath();
    blanks();
    if (path.length > 0 && text[i] === "=") {
      out.push({ line, path: [...table, ...path] });
      i++;
      skipValue();
      continue;
    }
    if (i === start) i++;
    toLineEnd();
  }
  return out;
}

/** The line of top-level key or table `key`, or null when the text has none. */
export function topLine(lines: readonly KeyLine[], key: string): number | null {
  return lines.find((k) => k.path[0] === key)?.line ?? null;
}

/**
 * The line of `key` inside the `index`-th `[[table]]` (from 0); without `key`, of that
 * header. Falls back to the header, then to the first line naming `table`.
 */
export function arrayTableLine(lines: readonly KeyLine[], table: string, index: number, key?: string): number | null {
  const headers = lines.flatMap((k, at) => (k.header === "array" && k.path.length === 1 && k.path[0] === table ? [at] : []));
  const at = headers[index];
  if (at === undefined) return topLine(lines, table);
  if (key !== undefined) {
    for (let j = at + 1; j < lines.length && !lines[j]!.header; j++) {
      if (lines[j]!.path[1] === key) return lines[j]!.line;
    }
  }
  return lines[at]!.line;
}
