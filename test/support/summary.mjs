// Prints the closing line CI reads, "N passed, N failed[, N skipped]", from vitest's JSON report.
// Failed non-test checks (typecheck, lint, build) count as failures. Exit 1 when anything failed or
// the report is missing (vitest crashed).
import { readFileSync } from 'node:fs';

const [file, extraFailed = '0', names = ''] = process.argv.slice(2);
let passed = 0;
let failed = Number(extraFailed);
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A file that failed without a failed test (it did not load, or a beforeAll threw and its tests
  // were skipped) counts as one failure.
  for (const f of r.testResults ?? []) {
    const anyFailed = (f.assertionResults ?? []).some((a) => a.status === 'failed');
    if (f.status === 'failed' && !anyFailed) failed += 1;
  }
} catch (err) {
  console.error(`no test report at ${file}: ${err.message}`);
  failed += 1;
}
if (names) console.error(`failed checks: ${names}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
