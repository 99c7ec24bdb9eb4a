/**
 * `npm run bench -- package [--runs N]`: size and start-up of the two ways to ship flotilla with
 * its own Node (docs/packaging.md): the bundled binary + tree (the release tarball, unpacked) and a
 * single executable application (scripts/package-sea.sh, if built: dist-pkg/sea/flotilla-sea).
 * Start-up = wall time of `flotilla version` and `flotilla help`, interleaved runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarize, nowMs } from './stats.js';
import { printTable } from './table.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const MiB = 2 ** 20;

function du(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

export default async function bench(args: string[]): Promise<void> {
  const i = args.indexOf('--runs');
  const runs = i >= 0 ? Number(args[i + 1]) : 15;
  const out = join(repo, 'dist-pkg');
  const tgz = existsSync(out) ? readdirSync(out).find((f) => f.endsWith('-linux-x64.tar.gz')) : undefined;
  if (!tgz) throw new Error('no dist-pkg/*-linux-x64.tar.gz: run npm run package first');
  const deb = readdirSync(out).find((f) => f.endsWith('_amd64.deb'));
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-package-'));
  try {
    execFileSync('tar', ['-xzf', join(out, tgz), '-C', dir]);
    const tree = join(dir, readdirSync(dir)[0]!);
    const sea = join(out, 'sea', 'flotilla-sea');
    const kinds: [string, string][] = [['bundled binary', join(tree, 'bin', 'flotilla')]];
    if (existsSync(sea)) kinds.push(['SEA', sea]);
    const sizes: (string | number)[][] = [
      [
        'bundled binary',
        du(tree) / MiB,
        statSync(join(out, tgz)).size / MiB,
        deb ? statSync(join(out, deb)).size / MiB : NaN,
      ],
    ];
    if (existsSync(sea)) {
      const gz = Number(
        execFileSync('sh', ['-c', 'gzip -6 -c "$1" | wc -c', 'gz', sea], { encoding: 'utf8' }),
      );
      sizes.push(['SEA', statSync(sea).size / MiB, gz / MiB, NaN]);
    }
    printTable('size (MiB)', ['option', 'on disk', 'tar.gz / gzip', '.deb'], sizes);
    const rows: (string | number)[][] = [];
    for (const cmd of ['version', 'help']) {
      const samples = new Map<string, number[]>(kinds.map(([k]) => [k, []]));
      for (let r = 0; r < runs + 2; r++) {
        for (const [k, exe] of kinds) {
          const t0 = nowMs();
          execFileSync(exe, [cmd], { stdio: 'ignore' });
          if (r >= 2) samples.get(k)!.push(nowMs() - t0); // the first two warm the page cache
        }
      }
      for (const [k] of kinds) {
        const s = summarize(samples.get(k)!);
        rows.push([`${k}: ${cmd}`, String(s.n), s.p50, s.min, s.max]);
      }
    }
    printTable('start-up (ms)', ['option: command', 'runs', 'p50', 'min', 'max'], rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return Promise.resolve();
}
