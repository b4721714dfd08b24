// Reads bun's JUnit report and ends the output with each failed test and what it failed
// on, then the closing line CI looks for: "N passed, N failed[, N skipped]". Exits 1 when
// anything failed or nothing ran.
import { summarizeJunit, summaryText } from "./junit-report.ts";

const path = process.argv[2] ?? "test-results/junit.xml";
const file = Bun.file(path);
if (!(await file.exists())) {
  console.log("0 passed, 1 failed");
  console.error(`test-summary: no report at ${path}: bun test did not finish`);
  process.exit(1);
}
const summary = summarizeJunit(await file.text());
console.log(summaryText(summary));
process.exit(summary.failed > 0 || summary.tests === 0 ? 1 : 0);
