/**
 * `npm run bench -- cloudinit-validate [--lines 5000] [--runs 20]`
 *
 * `-validate` of a generated cloud-config of about 5,000 lines (users, write_files with block
 * content, units with drop-ins, etcd2/fleet sections, a few unknown keys so the report is not
 * empty). Target: under 300 ms. Rows: the validator in-process (the code `flotilla cloudinit
 * -validate` and the boot path run), and the whole command as a process (`node bin/flotilla
 * cloudinit -validate -from-file F`, node start-up included) when dist/ is built.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate } from '../src/cloudinit/validate.js';
import { nowMs, summarize } from './stats.js';
import { printTable } from './table.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const TARGET_MS = 300;

function arg(args: string[], name: string, def: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : def;
}

/** A cloud-config of at least `lines` lines. */
export function generate(lines: number): string {
  const out = [
    '#cloud-config',
    'hostname: bench',
    'coreos:',
    '  etcd2:',
    '    name: bench',
    '    initial-cluster-state: new',
    '  fleet:',
    '    metadata: role=bench',
    '  units:',
  ];
  let i = 0;
  while (out.length < lines * 0.4) {
    out.push(
      `    - name: bench-${i}.service`,
      '      enable: true',
      '      command: start',
      '      content: |',
      '        [Unit]',
      `        Description=bench unit ${i}`,
      '        [Service]',
      `        ExecStart=/bin/sh -c 'echo ${i}; exec sleep infinity'`,
      '      drop-ins:',
      '        - name: 10-env.conf',
      '          content: |',
      '            [Service]',
      `            Environment=N=${i}`,
    );
    i++;
  }
  out.push('users:');
  for (let u = 0; out.length < lines * 0.6; u++) {
    out.push(
      `  - name: user${u}`,
      '    groups: [adm, docker]',
      '    ssh-authorized-keys:',
      `      - ssh-ed25519 AAAA${u} user${u}@bench`,
    );
  }
  out.push('write_files:');
  for (let f = 0; out.length < lines - 1; f++) {
    out.push(
      `  - path: /etc/bench/file-${f}`,
      "    permissions: '0644'",
      '    owner: root:root',
      '    content: |',
    );
    for (let l = 0; l < 6; l++) out.push(`      line ${l} of file ${f}`);
    if (f % 50 === 0) out.push(`    bogus-${f}: x`);
  }
  return `${out.join('\n')}\n`;
}

export default function bench(args: string[]): Promise<void> {
  const lines = arg(args, 'lines', 5000);
  const runs = arg(args, 'runs', 20);
  const text = generate(lines);
  const nLines = text.split('\n').length - 1;
  const entries = validate(text).length;
  validate(text); // warm
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = nowMs();
    validate(text);
    samples.push(nowMs() - t0);
  }
  const s = summarize(samples);
  const rows: (string | number)[][] = [
    [
      'validate() in-process',
      nLines,
      entries,
      s.n,
      s.p50,
      s.max,
      TARGET_MS,
      s.p50 < TARGET_MS ? 'ok' : 'SLOW',
    ],
  ];
  const cli = join(root, 'bin', 'flotilla');
  if (existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-ci-'));
    try {
      const file = join(dir, 'user_data');
      writeFileSync(file, text);
      const proc: number[] = [];
      for (let r = 0; r < Math.min(runs, 5); r++) {
        const t0 = nowMs();
        try {
          execFileSync(process.execPath, [cli, 'cloudinit', '-validate', '-from-file', file], {
            stdio: 'pipe',
          });
        } catch {
          /* exit 1: the report has entries (the generated unknown keys) */
        }
        proc.push(nowMs() - t0);
      }
      const p = summarize(proc);
      rows.push([
        'flotilla cloudinit -validate (process)',
        nLines,
        entries,
        p.n,
        p.p50,
        p.max,
        TARGET_MS,
        p.p50 < TARGET_MS ? 'ok' : 'SLOW',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else {
    rows.push([
      'flotilla cloudinit -validate (process)',
      nLines,
      entries,
      0,
      'n/a',
      'n/a',
      TARGET_MS,
      'no dist/ (npm run build)',
    ]);
  }
  printTable(
    `cloud-config -validate of a generated ${nLines}-line config (ms)`,
    ['case', 'lines', 'entries', 'runs', 'p50', 'max', 'target', 'result'],
    rows,
  );
  return Promise.resolve();
}
