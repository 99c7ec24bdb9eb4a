// Prints the closing line CI reads, "N passed, N failed[, N skipped]", from vitest's JSON reports,
// after one `FAILED file > test: why` line per failure (so the tail of a CI log names them).
//
//   summary.mjs REPORT[,REPORT...] FAILED_STEPS "STEP NAMES" [NAMED_REPORT...]
//
// The comma-separated REPORTs are counted (the main run, and the etcd-layout pass). FAILED_STEPS
// non-test checks (typecheck, lint, build, the other Node majors) count as one failure each. A
// NAMED_REPORT (the other Node majors' runs, already counted as a failed step) only adds names.
// Exit 1 when anything failed or a counted report is missing (vitest crashed).
import { readFileSync } from 'node:fs';

const [files = '', extraFailed = '0', names = '', ...others] = process.argv.slice(2);
let passed = 0;
let failed = Number(extraFailed);
let skipped = 0;
/** Each failed test, with the first line of why: printed last, where a log's tail still shows it. */
const failedNames = [];

const short = (name) => String(name ?? '').replace(/^.*?\/test\//, 'test/');
const firstLine = (text) =>
  String(text ?? '')
    .split('\n')[0]
    .slice(0, 300);

/** Name the failures of one report; returns the files that failed without a failed test. */
function collect(r, label) {
  let fileFailures = 0;
  const tag = label ? `[${label}] ` : '';
  for (const f of r.testResults ?? []) {
    const bad = (f.assertionResults ?? []).filter((a) => a.status === 'failed');
    // A file that failed without a failed test (it did not load, or a beforeAll threw and its tests
    // were skipped) counts as one failure.
    if (f.status === 'failed' && bad.length === 0) {
      fileFailures += 1;
      failedNames.push(`${tag}${short(f.name)}: ${firstLine(f.message ?? 'the file failed')}`);
    }
    for (const a of bad) {
      const why = firstLine(a.failureMessages?.[0]);
      failedNames.push(`${tag}${short(f.name)} > ${a.fullName ?? a.title}${why ? `: ${why}` : ''}`);
    }
  }
  return fileFailures;
}

for (const file of files.split(',').filter(Boolean)) {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    const label = files.includes(',') ? file.replace(/^.*\//, '').replace(/\.json$/, '') : '';
    failed += collect(r, label);
  } catch (err) {
    console.error(`no test report at ${file}: ${err.message}`);
    failed += 1;
  }
}
for (const o of others) {
  try {
    collect(JSON.parse(readFileSync(o, 'utf8')), o.replace(/^.*\//, '').replace(/\.json$/, ''));
  } catch {
    /* that run wrote no report (it did not start): its failed step says so */
  }
}
if (names) console.log(`failed checks: ${names}`);
for (const n of failedNames) console.log(`FAILED ${n}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
