/**
 * `npm run bench -- systemd [machine] [--units N] [--idle-seconds S]`
 *
 * flotilla's SystemdManager against `systemctl`, on the same test machine, in the same run:
 *
 * 1. Sequential start+stop of N small units (default 200): time per operation (one start or one
 *    stop, each waiting for its job like `systemctl start` does) through flotilla (host → machine bus)
 *    against `systemctl` run as a subprocess per operation (via test/env/exec.sh, so its cost includes
 *    bash + nsenter, measured separately as "exec.sh true"), and against `systemctl` looped inside the
 *    machine by one bash process (the fair peer: no nsenter, only fork/exec of systemctl).
 * 2. The same at concurrency 16.
 * 3. Event latency: from systemd's state change (the unit's StateChangeTimestamp, CLOCK_REALTIME,
 *    shared with the host kernel) to the moment a `for await` consumer of `watch()` has the event.
 * 4. Idle: D-Bus method calls per second while a watch on all N units is open and nothing changes,
 *    with the default 60 s safety-net resync, and with a 2 s resync to show what one resync costs.
 *
 * Needs the test environment's machines (bash test/env/machines.sh up 3) and root.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DbusSystemdManager } from '../src/systemd/dbus-manager.js';
import type { UnitEvent } from '../src/systemd/manager.js';
import { nowMs, summarize } from './stats.js';
import { printTable } from './table.js';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const envDir = join(root, 'test/env');
const UNITS_DIR = '/run/flotilla-bench/units';

/** Inner loop of the in-machine systemctl peer: fixed script text, unit names as arguments. */
const LOOP =
  'for u in "$@"; do for op in start stop; do s=$EPOCHREALTIME; systemctl "$op" "$u"; e=$EPOCHREALTIME; echo "${s/./} ${e/./}"; done; done';

function testenv(): Record<string, string> {
  const out = execFileSync('bash', [join(envDir, 'env.sh'), '--json'], { encoding: 'utf8' });
  return JSON.parse(out) as Record<string, string>;
}

function parseArgs(args: string[]): { machine: string | undefined; units: number; idleSeconds: number } {
  let machine: string | undefined;
  let units = 200;
  let idleSeconds = 20;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--units') units = Number(args[++i]);
    else if (a === '--idle-seconds') idleSeconds = Number(args[++i]);
    else machine = a;
  }
  if (!Number.isInteger(units) || units < 1) throw new Error('--units must be a positive integer');
  return { machine, units, idleSeconds };
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i]!);
    }),
  );
}

interface OpStats {
  perOp: number;
  p50: number;
  p99: number;
  wall: number;
}

/** start+stop of every unit; `perOp` = wall time / operations (throughput view). */
async function timed(
  units: readonly string[],
  concurrency: number,
  op: (kind: 'start' | 'stop', u: string) => Promise<void>,
): Promise<OpStats> {
  const lat: number[] = [];
  const t0 = nowMs();
  await pool(units, concurrency, async (u) => {
    for (const kind of ['start', 'stop'] as const) {
      const s = nowMs();
      await op(kind, u);
      lat.push(nowMs() - s);
    }
  });
  const wall = nowMs() - t0;
  const st = summarize(lat);
  return { perOp: wall / lat.length, p50: st.p50, p99: st.p99, wall };
}

/** The in-machine loop: `concurrency` bash loops over slices of the units, timed inside. */
function machineLoop(machine: string, units: readonly string[], concurrency: number): Promise<OpStats> {
  const slices = Array.from({ length: concurrency }, (_, k) => units.filter((_, i) => i % concurrency === k));
  const t0 = nowMs();
  return Promise.all(
    slices
      .filter((s) => s.length > 0)
      .map((s) =>
        run('bash', [join(envDir, 'exec.sh'), machine, 'bash', '-c', LOOP, 'bench', ...s], {
          maxBuffer: 16 << 20,
        }),
      ),
  ).then((outs) => {
    const wall = nowMs() - t0;
    const lat: number[] = [];
    let first = Infinity;
    let last = 0;
    for (const { stdout } of outs) {
      for (const line of stdout.trim().split('\n')) {
        const [s, e] = line.split(' ').map(Number) as [number, number];
        lat.push((e - s) / 1000);
        first = Math.min(first, s);
        last = Math.max(last, e);
      }
    }
    const inside = (last - first) / 1000; // without nsenter/bash start-up of the loops
    const st = summarize(lat);
    return { perOp: inside / lat.length, p50: st.p50, p99: st.p99, wall };
  });
}

export default async function bench(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const env = testenv();
  const machines = (env.TESTENV_MACHINES ?? '').split(',').filter(Boolean);
  const m = opts.machine ?? machines[0];
  if (!m || !machines.includes(m))
    throw new Error(`machine ${m ?? '(none)'} is not up (bash test/env/machines.sh up 3)`);
  const address = env[`TESTENV_${m.toUpperCase()}_BUS`]!;
  const pidFile = join(dirname(dirname(address.replace(/^unix:path=/, ''))), 'pid1');
  if (!existsSync(pidFile)) throw new Error(`no ${pidFile}`);
  const fsRoot = `/proc/${readFileSync(pidFile, 'utf8').trim()}/root`;
  const exec = (...cmd: string[]) => run('bash', [join(envDir, 'exec.sh'), m, ...cmd]);

  const version = execFileSync('bash', [join(envDir, 'exec.sh'), m, 'systemctl', '--version'], {
    encoding: 'utf8',
  }).split('\n')[0];
  console.log(`systemd benchmark on ${m} (${version}), ${opts.units} units, node ${process.version}`);

  const mgr = await DbusSystemdManager.connect({
    address,
    fsRoot,
    unitsDir: UNITS_DIR,
    resyncIntervalMs: 60_000,
  });
  const tag = Math.random().toString(36).slice(2, 7);
  const units = Array.from({ length: opts.units }, (_, i) => `flotilla-bench-${tag}-${i}.service`);
  try {
    await mgr.installMany(
      units.map((u) => ({
        name: u,
        contents: `[Unit]\nDescription=bench ${u}\n\n[Service]\nExecStart=/bin/sleep infinity\n`,
      })),
    );

    // warm up: every unit loaded and started once, each path cached
    await pool(units, 16, async (u) => {
      await mgr.start(u);
      await mgr.stop(u);
    });

    // 1 + 2. start+stop, sequential and at concurrency 16
    const viaFlotilla = (c: number) =>
      timed(units, c, async (kind, u) => {
        await (kind === 'start' ? mgr.start(u) : mgr.stop(u));
      });
    const viaExec = (c: number) =>
      timed(units, c, async (kind, u) => {
        await exec('systemctl', kind, u);
      });
    const nsenter = await timed(units.slice(0, 50), 1, async () => {
      await exec('true');
    });

    const rows: { label: string; c: number; f: OpStats; e: OpStats; l: OpStats }[] = [];
    for (const c of [1, 16]) {
      const f = await viaFlotilla(c);
      const e = await viaExec(c);
      const l = await machineLoop(m, units, c);
      rows.push({ label: c === 1 ? 'sequential' : `concurrency ${c}`, c, f, e, l });
    }
    printTable(
      `start+stop of ${opts.units} units (ms per operation = wall time / ${2 * opts.units} ops; p50/p99 = single-op latency)`,
      ['run', 'method', 'per op', 'p50', 'p99', 'wall s'],
      rows.flatMap((r) => [
        [r.label, 'flotilla (host → bus)', r.f.perOp, r.f.p50, r.f.p99, r.f.wall / 1000],
        [r.label, 'systemctl via exec.sh', r.e.perOp, r.e.p50, r.e.p99, r.e.wall / 1000],
        [r.label, 'systemctl loop in machine', r.l.perOp, r.l.p50, r.l.p99, r.l.wall / 1000],
      ]),
    );
    printTable(
      'subprocess overhead of exec.sh (bash + nsenter), no systemctl',
      ['what', 'p50 ms', 'p99 ms'],
      [['exec.sh m true', nsenter.p50, nsenter.p99]],
    );
    printTable(
      'ratios (systemctl time / flotilla time; > 1 means flotilla is faster)',
      ['run', 'vs systemctl via exec.sh', 'vs systemctl loop in machine'],
      rows.map((r) => [r.label, r.e.perOp / r.f.perOp, r.l.perOp / r.f.perOp]),
    );

    // 3. event latency
    const sample = units.slice(0, Math.min(100, units.length));
    const w = mgr.watch({ units: sample });
    const lat: number[] = [];
    const want = new Map<string, string>(); // unit → activeState we wait for
    let wake: (() => void) | undefined;
    const consumer = (async () => {
      for await (const e of w as AsyncIterable<UnitEvent>) {
        const got = Date.now();
        if (
          e.type !== 'changed' ||
          want.get(e.unit) !== e.state.activeState ||
          !e.changed.includes('activeState')
        )
          continue;
        if (e.state.stateChangeTimestamp !== null) lat.push(got - e.state.stateChangeTimestamp);
        want.delete(e.unit);
        wake?.();
      }
    })();
    await new Promise((r) => setTimeout(r, 500)); // initial events
    for (const u of sample) {
      for (const [kind, state] of [
        ['start', 'active'],
        ['stop', 'inactive'],
      ] as const) {
        want.set(u, state);
        const seen = new Promise<void>((r) => (wake = r));
        await (kind === 'start' ? mgr.start(u) : mgr.stop(u));
        await Promise.race([seen, new Promise((r) => setTimeout(r, 2000))]);
      }
    }
    const missed = 2 * sample.length - lat.length;
    const ev = summarize(lat);

    // 4. idle
    await new Promise((r) => setTimeout(r, 1000));
    const idleWatch = mgr.watch({ units });
    await new Promise((r) => setTimeout(r, 2000)); // initial fetches
    const before = mgr.stats;
    await new Promise((r) => setTimeout(r, opts.idleSeconds * 1000));
    const after = mgr.stats;
    const idleCalls = after.calls - before.calls;
    const idleSignals = after.signals - before.signals;
    // The machines are shared: someone else's daemon-reload is a change, and we resync after it.
    const idleReloads = after.reloadsSeen - before.reloadsSeen;
    const idleByMember = [...after.byMember]
      .map(([k, v]) => [k, v - (before.byMember.get(k) ?? 0)] as const)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k}x${v}`)
      .join(' ');
    idleWatch.close();
    w.close();
    await consumer;

    const fast = await DbusSystemdManager.connect({
      address,
      fsRoot,
      unitsDir: UNITS_DIR,
      resyncIntervalMs: 2000,
    });
    let resyncCalls = 0;
    let resyncs = 0;
    try {
      const fw = fast.watch({ units });
      await new Promise((r) => setTimeout(r, 2500));
      const c1 = fast.stats.calls;
      const r1 = fast.stats.resyncs;
      await new Promise((r) => setTimeout(r, 6000));
      resyncCalls = fast.stats.calls - c1;
      resyncs = fast.stats.resyncs - r1;
      fw.close();
    } finally {
      await fast.close();
    }

    printTable(
      `event latency: systemd state change → watch() consumer (${lat.length} transitions of ${sample.length} units${missed ? `, ${missed} missed` : ''})`,
      ['p50 ms', 'p99 ms', 'max ms', 'target p99'],
      [[ev.p50, ev.p99, ev.max, '< 50 ms']],
    );
    printTable(
      `idle: watch on ${units.length} units, none of them changing`,
      [
        'setting',
        'window s',
        'D-Bus calls',
        'calls/s',
        'which',
        'daemon-reloads by others',
        'signals received',
      ],
      [
        [
          'resync every 60 s (default)',
          opts.idleSeconds,
          idleCalls,
          idleCalls / opts.idleSeconds,
          idleByMember || '-',
          idleReloads,
          idleSignals,
        ],
        [
          `resync every 2 s (${resyncs} resyncs)`,
          6,
          resyncCalls,
          resyncCalls / 6,
          'ListUnitsByNames',
          '-',
          '-',
        ],
      ],
    );
  } finally {
    await mgr.uninstallMany(units).catch((e: unknown) => console.error('cleanup failed:', e));
    await mgr.close();
  }
}
