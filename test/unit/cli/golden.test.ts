/**
 * Golden output: every list command in every format, every --fields key and bad keys, and the
 * error messages and exit codes, compared byte for byte (tabs included) with test/golden/*.golden.
 * The CLI runs in-process against the real API server over a real embedded registry holding a fixed
 * fixture (harness.ts). `UPDATE_GOLDEN=1 npx vitest run --project unit test/unit/cli/golden.test.ts`
 * rewrites the files; review the diff.
 *
 * A golden file is `exit: N`, then `--- stdout` and `--- stderr` each followed by the exact bytes
 * (a stream not ending in a newline is marked `\ no newline at end`).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MACHINE_FIELDS, UNIT_FIELDS, UNIT_FILE_FIELDS } from '../../../src/cli/commands/list.js';
import { seed, startApi, statusJournalStandIn, type Api, type RunResult } from './harness.js';

const GOLDEN = join(import.meta.dirname, '../../golden');
const update = process.env.UPDATE_GOLDEN === '1';

function render(argv: string[], r: RunResult): string {
  const stream = (s: string) => (s === '' || s.endsWith('\n') ? s : `${s}\n\\ no newline at end\n`);
  return `$ flotilla ${argv.join(' ')}\nexit: ${r.code}\n--- stdout\n${stream(r.out)}--- stderr\n${stream(r.err)}`;
}

const cases: [string, string[]][] = [];
const add = (slug: string, ...argv: string[]) => cases.push([slug, argv]);

// Every list command in every format.
for (const [cmd, fields, hasL] of [
  ['list-machines', MACHINE_FIELDS, true],
  ['list-units', UNIT_FIELDS, true],
  ['list-unit-files', UNIT_FILE_FIELDS, false],
] as const) {
  add(`${cmd}`, cmd);
  add(`${cmd}.full`, cmd, '--full');
  if (hasL) {
    add(`${cmd}.l`, cmd, '-l');
    add(`${cmd}.long-l`, cmd, '--l');
  }
  add(`${cmd}.no-legend`, cmd, '--no-legend');
  add(`${cmd}.json`, cmd, '-o', 'json');
  add(`${cmd}.output-json`, cmd, '--output=json');
  for (const f of fields) add(`${cmd}.fields-${f}`, cmd, `--fields=${f}`);
  add(`${cmd}.fields-all`, cmd, '--full', '--no-legend', `--fields=${fields.join(',')}`);
  add(`${cmd}.fields-bogus`, cmd, '--fields=unit,bogus');
  add(`${cmd}.fields-empty`, cmd, '--fields=');
  add(`${cmd}.fields-trailing-comma`, cmd, `--fields=${fields[0]},`);
  add(`${cmd}.output-bogus`, cmd, '-o', 'yaml');
}
add('list-units.prefix', 'list-un');
add('list-machines.prefix', 'list-mach', '--no-legend');

// Command line errors (flotilla: exit 64; fleetctl exited 0).
add('error.unknown-command', 'bogus');
add('error.ambiguous-prefix', 'st');
add('error.unknown-flag', 'list-units', '--bogus');
add('error.unknown-short-flag', 'list-unit-files', '-l');
add('error.bool-value', 'list-units', '--no-legend=yes');
add('bool-false', 'list-machines', '--no-legend=false', '--full=0');
add('error.block-attempts', 'start', '--block-attempts=two', 'hello.service');
add('error.completion-shell', 'completion', 'fish');

// fleetctl's messages and exit codes.
add('submit.no-units', 'submit');
add('start.no-units', 'start');
add('stop.no-units', 'stop');
add('destroy.no-units', 'destroy');
add('stop.not-found', 'stop', 'nope.service');
add('unload.not-found', 'unload', 'nope.service');
add('destroy.not-found', 'destroy', 'nope.service', 'nope2');
add('stop.inactive', 'stop', 'a-very-long-unit-name-for-column-widths.service');
add('restart.inactive', 'restart', 'web@.service');
add('cat', 'cat', 'hello');
add('cat.not-found', 'cat', 'nope.service');
add('cat.no-args', 'cat');
add('cat.two-args', 'cat', 'a', 'b');
add('submit.not-found', 'submit', '/nonexistent/dir/nope.service');
add('submit.slice-not-found', 'submit', '/nonexistent/x.slice');
add('submit.instance-no-template', 'submit', '/nonexistent/dir/api@1.service');
add('start.template', 'start', '--no-block', 'web@.service');
add('load.already-loaded', 'load', 'db.service');
add('start.already-launched', 'start', 'hello.service');
add('status.not-found', 'status', 'nope.service');
add('status.inactive', 'status', 'a-very-long-unit-name-for-column-widths.service');
add('status.global', 'status', 'global.service');
add('status.no-units', 'status');
add('journal.no-args', 'journal');
add('journal.two-args', 'journal', 'a', 'b');
add('journal.not-found', 'journal', 'nope');
add('journal.inactive', 'journal', 'web@.service');
add('journal.global', 'journal', 'global.service');
add('journal.bad-output', 'journal', '--output=bogus', 'hello.service');
add('journal.bad-lines', 'journal', '--lines=-3', 'hello.service');
add('ssh.no-args', 'ssh');
add('ssh.both-flags', 'ssh', '--machine=a1', '--unit=hello.service');
add('ssh.no-match', 'ssh', 'zzz');
add('ssh.many-machines', 'ssh', '--machine=a1');
add('ssh.ambiguous', 'ssh', 'beef');
add('ssh.machine-missing', 'ssh', '--machine=ffff');
add('ssh.unit-missing', 'ssh', '--unit=nope.service');
add('ssh.unit-global', 'ssh', '--unit=global.service');
add('ssh.unit-not-placed', 'ssh', '--unit=ap-only.service');
add('ssh.no-ip', 'ssh', '--machine=beef');
add('error.flag-needs-value', 'list-units', '--fields');
add('error.short-in-group', 'list-units', '-lx');
add('verify', 'verify', 'hello.service');
add('driver.etcd', '--driver=etcd', 'list-units');
add('driver.bogus', '--driver=bogus', 'list-units');
add('endpoint.relative-unix', '--endpoint=unix://var/run/fleet.sock', 'list-machines');
add('endpoint.no-scheme', '--endpoint=/var/run/fleet.sock', 'list-machines');
add('endpoint.unreachable', '--endpoint=unix:///nonexistent/fleet.sock', 'list-units');
add('endpoint.bad-scheme', '--endpoint=ftp://x', 'list-units');
add('request-timeout.bad', '--request-timeout=0', 'list-units');

let api: Api;

beforeAll(async () => {
  mkdirSync(GOLDEN, { recursive: true });
  api = await startApi((registry) => [statusJournalStandIn(registry).handler]);
  await seed(api);
});
afterAll(async () => {
  await api.close();
});

describe('golden output (test/golden)', () => {
  it('has one case per golden file', () => {
    const slugs = new Set(cases.map(([s]) => s));
    expect(slugs.size).toBe(cases.length);
    const files = readdirSync(GOLDEN).filter((f) => f.endsWith('.golden'));
    expect(files.map((f) => f.slice(0, -'.golden'.length)).filter((s) => !slugs.has(s))).toEqual([]);
  });

  it.each(cases)('%s', async (slug, argv) => {
    const r = await api.run(argv);
    const text = render(argv, r);
    const file = join(GOLDEN, `${slug}.golden`);
    if (update || !existsSync(file)) {
      if (!update) throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 and review it`);
      writeFileSync(file, text);
    }
    expect(text).toBe(readFileSync(file, 'utf8'));
  });
});
