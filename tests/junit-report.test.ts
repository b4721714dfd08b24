// CI keeps only the end of the test output: the summary must end it with each failed
// test and what it failed on, then the closing counts.
import { describe, expect, test } from "bun:test";
import { decodeXmlText, summarizeJunit, summaryText } from "../scripts/junit-report.ts";

// Shaped like bun's own report: a suite per file, one per describe inside it.
const REPORT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="bun test" tests="4" assertions="9" failures="1" skipped="1" time="2.5">
  <testsuite name="tests/a.test.ts" file="tests/a.test.ts" tests="4" failures="1" skipped="1">
    <testsuite name="streaming" file="tests/a.test.ts" line="3" tests="3" failures="1" skipped="1">
      <testsuite name="window" file="tests/a.test.ts" line="9" tests="2" failures="1" skipped="1">
        <testcase name="ESC closes it &amp; says &quot;bye&quot;" classname="window" file="tests/a.test.ts" line="10" assertions="2">
          <failure type="Error" message="short">Error: the viewer exited 1 after ESC&#10;stderr:&#10;ERROR [client] no frame arrived &lt;here&gt;&#x21;&#10;</failure>
        </testcase>
        <testcase name="skipped one" classname="window" file="tests/a.test.ts" line="20">
          <skipped />
        </testcase>
      </testsuite>
      <testcase name="passes" classname="streaming" file="tests/a.test.ts" line="30" assertions="3" />
    </testsuite>
    <testcase name="top level" classname="" file="tests/a.test.ts" line="40" assertions="4">
    </testcase>
  </testsuite>
</testsuites>
`;

describe("the JUnit summary", () => {
  test("counts come from the report; each failure has its describe path, place and decoded text", () => {
    const s = summarizeJunit(REPORT);
    expect(s).toMatchObject({ tests: 4, passed: 2, failed: 1, skipped: 1 });
    expect(s.failures).toEqual([{
      name: `streaming > window > ESC closes it & says "bye"`,
      where: "tests/a.test.ts:10",
      message: "Error: the viewer exited 1 after ESC\nstderr:\nERROR [client] no frame arrived <here>!",
    }]);
  });

  test("the text ends with the closing line CI looks for, after the failures", () => {
    const lines = summaryText(summarizeJunit(REPORT)).split("\n");
    expect(lines.at(-1)).toBe("2 passed, 1 failed, 1 skipped");
    expect(lines).toContain("✗ streaming > window > ESC closes it & says \"bye\" (tests/a.test.ts:10)");
    expect(lines).toContain("    ERROR [client] no frame arrived <here>!");
  });

  test("a clean run is the closing line alone", () => {
    const clean = REPORT.replace(/<failure[\s\S]*?<\/failure>/, "").replace('failures="1"', 'failures="0"');
    expect(summaryText(summarizeJunit(clean))).toBe("3 passed, 0 failed, 1 skipped");
  });

  test("long messages are cut and many failures capped, each saying so", () => {
    const many = Array.from({ length: 12 }, (_, i) =>
      `<testcase name="t${i}" file="tests/b.test.ts" line="${i}"><error message="m">${"x".repeat(5000)}</error></testcase>`).join("\n");
    const xml = `<testsuites tests="12" failures="0" errors="12" skipped="0"><testsuite name="tests/b.test.ts" file="tests/b.test.ts">${many}</testsuite></testsuites>`;
    const s = summarizeJunit(xml);
    expect(s).toMatchObject({ tests: 12, passed: 0, failed: 12 });
    const text = summaryText(s, 10, 100);
    expect(text).toContain("[… 4900 characters more]");
    expect(text).toContain("… and 2 more failed tests (see the report)");
    expect(text.split("\n").at(-1)).toBe("0 passed, 12 failed");
  });

  test("a report without totals is counted from its test cases; a failure with no text gives its message attribute", () => {
    const xml = `<testsuites><testsuite name="x"><testcase name="a"><failure message="boom &lt;1&gt;"/></testcase><testcase name="b"/><testcase name="c"><skipped/></testcase></testsuite></testsuites>`;
    const s = summarizeJunit(xml);
    expect(s).toMatchObject({ tests: 3, passed: 1, failed: 1, skipped: 1 });
    expect(s.failures[0]).toEqual({ name: "x > a", where: "", message: "boom <1>" });
  });

  test("entities: named, decimal and hex; an out-of-range one becomes the replacement character", () => {
    expect(decodeXmlText("&lt;a&gt; &amp;&amp; &quot;&apos; &#65;&#x42; &#x110000;")).toBe(`<a> && "' AB \uFFFD`);
  });
});
