export {};
// Reads bun's JUnit report and prints the closing line CI looks for:
// "N passed, N failed[, N skipped]". Exits 1 when anything failed or nothing ran.
const path = process.argv[2] ?? "test-results/junit.xml";
const file = Bun.file(path);
if (!(await file.exists())) {
  console.log("0 passed, 1 failed");
  console.error(`test-summary: no report at ${path}: bun test did not finish`);
  process.exit(1);
}
const xml = await file.text();
const attr = (name: string) => Number(new RegExp(`<testsuites[^>]*\\s${name}="(\\d+)"`).exec(xml)?.[1] ?? NaN);
let tests = attr("tests");
let failures = attr("failures") + (attr("errors") || 0);
let skipped = attr("skipped") || 0;
if (!Number.isFinite(tests)) {
  // Older reports: count the test cases themselves.
  tests = (xml.match(/<testcase\b/g) ?? []).length;
  failures = (xml.match(/<failure\b/g) ?? []).length + (xml.match(/<error\b/g) ?? []).length;
  skipped = (xml.match(/<skipped\b/g) ?? []).length;
}
if (!Number.isFinite(failures)) failures = 0;
const passed = tests - failures - skipped;
console.log(`${passed} passed, ${failures} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failures > 0 || tests === 0 ? 1 : 0);
