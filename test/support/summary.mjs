// Prints the closing line CI reads, "N passed, N failed[, N skipped]", from vitest's JSON report,
// after one `FAILED file > test: why` line per failure (so the tail of a CI log names them).
// Failed non-test checks (typecheck, lint, build) count as failures. Exit 1 when anything failed or
// the report is missing (vitest crashed).
import { readFileSync } from 'node:fs';

const [file, extraFailed = '0', names = '', ...others] = process.argv.slice(2);
let passed = 0;
let failed = Number(extraFailed);
let skipped = 0;
/** Each failed test, with the first line of why: printed last, where a log's tail still shows it. */
const failedNames = [];
try {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A file that failed without a failed test (it did not load, or a beforeAll threw and its tests
  // were skipped) counts as one failure.
  for (const f of r.testResults ?? []) {
    const file = String(f.name ?? '').replace(/^.*?\/test\//, 'test/');
    const bad = (f.assertionResults ?? []).filter((a) => a.status === 'failed');
    if (f.status === 'failed' && bad.length === 0) {
      failed += 1;
      failedNames.push(`${file}: ${String(f.message ?? 'the file failed').split('\n')[0].slice(0, 300)}`);
    }
    for (const a of bad) {
      const why = String(a.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300);
      failedNames.push(`${file} > ${a.fullName ?? a.title}${why ? `: ${why}` : ''}`);
    }
  }
} catch (err) {
  console.error(`no test report at ${file}: ${err.message}`);
  failed += 1;
}
// The other Node majors' reports (test/other-node.sh): their failures are counted as failed checks
// already; here they are only named.
for (const o of others) {
  try {
    const r = JSON.parse(readFileSync(o, 'utf8'));
    const label = o.replace(/^.*\//, '').replace(/\.json$/, '');
    for (const f of r.testResults ?? [])
      for (const a of (f.assertionResults ?? []).filter((x) => x.status === 'failed'))
        failedNames.push(
          `[${label}] ${String(f.name).replace(/^.*?\/test\//, 'test/')} > ${a.fullName ?? a.title}: ${String(a.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300)}`,
        );
  } catch {
    /* that run wrote no report (it did not start): its step failure says so */
  }
}
if (names) console.log(`failed checks: ${names}`);
for (const n of failedNames) console.log(`FAILED ${n}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
