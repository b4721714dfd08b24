// Reads bun's JUnit report: the counts CI's closing line gives, and each failed test with
// the message it failed with (CI keeps only the end of the output, and bun prints a
// failure's message where it happened, far above the end).

/** One failed test. */
export interface FailedTest {
  /** "describe > test", as bun prints it. */
  name: string;
  /** "tests/x.test.ts:12", when the report says. */
  where: string;
  /** The failure's text, entities decoded. */
  message: string;
}

/** What a report says. */
export interface JunitSummary {
  tests: number;
  passed: number;
  failed: number;
  skipped: number;
  failures: FailedTest[];
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** XML text with its entities (named, decimal and hex) decoded. */
export function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e[0] !== "#") return ENTITIES[e]!;
    const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : "\uFFFD";
  });
}

const attrOf = (attrs: string, name: string): string | null => {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(attrs);
  return m ? decodeXmlText(m[1]!) : null;
};

/** The counts and failures in a JUnit report `xml` (bun's: nested testsuites, testcases with a failure or error child). */
export function summarizeJunit(xml: string): JunitSummary {
  const failures: FailedTest[] = [];
  let tests = 0;
  let skipped = 0;
  // Each suite's name, for the "describe > test" path; bun nests a suite per describe inside one per file.
  const suites: { name: string; file: boolean }[] = [];
  const tag = /<(\/?)(testsuite|testcase)\b([^>]*?)(\/?)>|<(failure|error)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/\5>)|<skipped\b/g;
  let open: { name: string; where: string; failed: boolean } | null = null;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const [, closing, kind, attrs = "", selfClosing] = m;
    if (kind === "testsuite") {
      if (closing) suites.pop();
      else if (!selfClosing) suites.push({ name: attrOf(attrs, "name") ?? "", file: attrOf(attrs, "file") !== null && suites.length === 0 });
    } else if (kind === "testcase") {
      if (closing) {
        open = null;
        continue;
      }
      tests++;
      const file = attrOf(attrs, "file");
      const line = attrOf(attrs, "line");
      const path = suites.filter((s, i) => !(i === 0 && (s.file || s.name.endsWith(".ts")))).map((s) => s.name);
      open = { name: [...path, attrOf(attrs, "name") ?? "?"].join(" > "), where: file ? (line ? `${file}:${line}` : file) : "", failed: false };
      if (selfClosing) open = null;
    } else if (m[5] && open && !open.failed) {
      open.failed = true;
      const body = m[7] !== undefined ? decodeXmlText(m[7]).trim() : "";
      failures.push({ name: open.name, where: open.where, message: body || (attrOf(m[6] ?? "", "message") ?? "").trim() });
    } else if (m[0] === "<skipped" && open) {
      skipped++;
    }
  }
  // The report's own totals when it gives them (errors count as failures).
  const total = (name: string) => Number(new RegExp(`<testsuites\\b[^>]*\\s${name}="(\\d+)"`).exec(xml)?.[1] ?? NaN);
  if (Number.isFinite(total("tests"))) {
    tests = total("tests");
    skipped = total("skipped") || 0;
  }
  const failed = Number.isFinite(total("failures")) ? Math.max(failures.length, total("failures") + (total("errors") || 0)) : failures.length;
  return { tests, passed: tests - failed - skipped, failed, skipped, failures };
}

/** The lines CI's log should end with: each failure (at most `most`, each cut to `maxChars`), then "N passed, N failed[, N skipped]". */
export function summaryText(s: JunitSummary, most = 10, maxChars = 3000): string {
  const out: string[] = [];
  if (s.failures.length) {
    out.push("", `failed tests (${s.failures.length}), with what they failed on:`);
    for (const f of s.failures.slice(0, most)) {
      const msg = f.message.length > maxChars ? `${f.message.slice(0, maxChars)}\n[… ${f.message.length - maxChars} characters more]` : f.message;
      out.push("", `✗ ${f.name}${f.where ? ` (${f.where})` : ""}`, ...msg.split("\n").map((l) => `    ${l}`));
    }
    if (s.failures.length > most) out.push("", `… and ${s.failures.length - most} more failed tests (see the report)`);
    out.push("");
  }
  out.push(`${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
  return out.join("\n");
}
