/**
 * `npm run bench -- cluster-real [--runs 10] [--partition-runs 5] [--units 1000] [--idle 60]
 *   [--only failover,partition,start,idle]`
 *
 * The real-machine part of the cluster benchmark, on the test environment's 3 systemd-nspawn machines
 * (test/env: flotilla.service in each, etcd members inside the machines, agent_ttl=3s,
 * engine_reconcile_interval=1s). Needs root and a running environment; it wipes flotilla's state
 * (cluster.sh wipe + up) first, and power-cuts machines.
 *
 *   1. Failover: power cut of the machine holding the most benchmark units → every one of its units
 *      active on another machine. Measured on one clock: the machines share the host's
 *      CLOCK_MONOTONIC, so "active" is systemd's ActiveEnterTimestampMonotonic of the new copy and the
 *      cut is the host's monotonic time just before cgroup.kill. Also reported: when the registry
 *      (watched from the host) showed the new copy active. The machine is booted again between runs
 *      and the next run waits until it rejoined (machine key back, its etcd member healthy). Runs are
 *      also split by whether the victim held the engine leadership and whether its etcd member was
 *      the raft leader (etcd re-grants every lease its full TTL when a new raft leader takes over, so
 *      the dead machine's presence lease then outlives it by up to one more TTL).
 *   2. Partition (partition-window.ts): the duplicate window of a network partition, and when the
 *      units were active elsewhere and the partitioned copies fenced, in both etcd endpoint layouts
 *      (each agent knows only its local member; every member listed), `--partition-runs` each.
 *   3. Starting N units (`sleep infinity` instances of one template): `fleetctl start --no-block` in
 *      batches of 100, three CLIs at a time (one per machine); time until the registry shows all N
 *      active; then destroy them all and time until every state record is gone.
 *   4. Idle agent: RSS (VmRSS) and CPU (utime+stime) of each agent over `--idle` seconds, read from
 *      /proc inside the machines every 5 s.
 *
 * `realClusterBench(args)` returns the rows (REAL_CLUSTER_HEADER columns) for a combined table; the
 * default export prints them.
 */
import {
  UNIT_DIR,
  allMachines,
  ctl,
  etcdMemberHealthy,
  etcdRaftLeader,
  freshCluster,
  machineUp,
  monoNowUs,
  putFile,
  restoreMachines,
  sleep,
  sleepUnit,
  unitsTimes,
  waitFor,
  writeUnit,
  type ClusterMap,
} from '../test/support/cluster.js';
import { bootMachine, powerCut } from '../test/support/testbed.js';
import { endpointsOf, sampleAgents, withWatch, type StateWatch } from './sim/cluster-watch.js';
import { printTable } from './table.js';
import { REAL_CLUSTER_HEADER, median, nMinMedianMax } from './stats.js';
import { journalSpans, logSpans } from './bulk-trace.js';
import { partitionWindows } from './partition-window.js';

export { REAL_CLUSTER_HEADER };
type Row = (string | number)[];

interface Options {
  runs: number;
  units: number;
  idleS: number;
  only: Set<string>;
  partitionRuns: number;
  /** Start/destroy runs (each on a fresh cluster). */
  startRuns: number;
  /** Another checkout (seen by the machines at the same path, TESTENV_BIND_RO): its agents and CLI are the baseline, alternated with this one's. */
  baseline: string | undefined;
  /** Log where a start/destroy spends its time (the agents' journals; bulk-trace.ts). */
  trace: boolean;
}

function parseArgs(args: string[]): Options {
  const o: Options = {
    runs: 10,
    units: 1000,
    idleS: 60,
    only: new Set(['failover', 'partition', 'start', 'idle']),
    partitionRuns: 5,
    startRuns: 1,
    baseline: undefined,
    trace: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = args[i + 1];
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a} needs a positive number`);
      i++;
      return n;
    };
    if (a === '--runs') o.runs = Math.round(num());
    else if (a === '--units') o.units = Math.round(num());
    else if (a === '--idle') o.idleS = num();
    else if (a === '--partition-runs') o.partitionRuns = Math.round(num());
    else if (a === '--start-runs') o.startRuns = Math.round(num());
    else if (a === '--trace') o.trace = true;
    else if (a === '--baseline') {
      if (!v) throw new Error('--baseline needs a directory (a checkout the machines see, built)');
      o.baseline = v;
      i++;
    } else if (a === '--only') {
      o.only = new Set((v ?? '').split(',').filter(Boolean));
      i++;
    } else
      throw new Error(
        `unknown argument ${a} (--runs N --units N --idle S --only failover,partition,start,idle --partition-runs N --start-runs N --baseline DIR --trace)`,
      );
  }
  return o;
}

const stats = nMinMedianMax;
const log = (msg: string) => console.error(`[cluster-real] ${msg}`);

/** Start sleep units named `${stem}-${i}` from machine `from`; wait until the registry shows them active. */
async function startPlainUnits(from: string, stem: string, n: number, watch: StateWatch): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `${stem}-${i + 1}.service`);
  const paths: string[] = [];
  for (const u of names) paths.push(await writeUnit(from, u, sleepUnit([], 'cluster-real bench')));
  const r = await ctl(from, 'start', '--no-block', ...paths);
  if (r.code !== 0) throw new Error(`start failed: ${r.stderr}`);
  await watch.until(
    `${n} units active`,
    () =>
      names.every((u) => [...watch.states.values()].some((s) => s.unit === u && s.activeState === 'active')),
    60_000,
  );
  return names;
}

async function failover(map: ClusterMap, runs: number): Promise<Row[]> {
  const stem = `bench-fo-${Date.now().toString(36)}`;
  const units = await withWatch(endpointsOf(allMachines), (w) =>
    startPlainUnits(allMachines[0]!, stem, 6, w),
  );
  const lastCut = new Map<string, number>(allMachines.map((m) => [m, -1]));
  const all: number[] = [];
  const first: number[] = [];
  const registry: number[] = [];
  const leaderRuns: number[] = [];
  const otherRuns: number[] = [];
  const raftLeaderRuns: number[] = [];
  const raftOtherRuns: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const where = new Map<string, string>();
      const probe = await withWatch(endpointsOf(allMachines), (w) => Promise.resolve([...w.states.values()]));
      for (const s of probe)
        if (units.includes(s.unit) && s.activeState === 'active') where.set(s.unit, map.name(s.machineID));
      // The machine that holds the most of the units (least recently cut on a tie).
      const victim = [...allMachines].sort((a, b) => {
        const na = [...where.values()].filter((x) => x === a).length;
        const nb = [...where.values()].filter((x) => x === b).length;
        return nb - na || lastCut.get(a)! - lastCut.get(b)!;
      })[0]!;
      // Watch through the survivors' members only: a watch does not move off a member that dies
      // (see the report), and the victim's member dies with it.
      const survivors = allMachines.filter((m) => m !== victim);
      await withWatch(endpointsOf(survivors), async (watch) => {
        lastCut.set(victim, run);
        const moving = [...where].filter(([, m]) => m === victim).map(([u]) => u);
        const victimId = map.id(victim);
        const leaderKv = await watch.kv.get('engine/leader');
        const wasLeader = leaderKv
          ? (JSON.parse(leaderKv.value) as { machineID?: string }).machineID === victimId
          : false;

        const raftLeader = await etcdRaftLeader(survivors[0]!).catch(() => '?');
        const wasRaftLeader = raftLeader === victim;

        const cutUs = monoNowUs();
        powerCut(victim);
        const movedKeys = () =>
          moving.map((u) =>
            [...watch.states.values()].find(
              (s) =>
                s.unit === u &&
                s.machineID !== victimId &&
                s.activeState === 'active' &&
                s.activeSinceUs > cutUs,
            ),
          );
        await watch.until(`${moving.join(',')} active elsewhere`, () => movedKeys().every(Boolean), 60_000);
        const seen = movedKeys().map((s) => s!);
        const regUs = Math.max(...seen.map((s) => s.activeSinceUs)) - cutUs;
        // systemd's own activation time of each new copy
        const enters: number[] = [];
        for (const m of survivors) {
          const mine = seen.filter((s) => map.name(s.machineID) === m).map((s) => s.unit);
          const times = await unitsTimes(m, mine);
          enters.push(...times.map((t) => t.activeEnterUs - cutUs));
        }
        const allMs = Math.max(...enters) / 1000;
        const firstMs = Math.min(...enters) / 1000;
        all.push(allMs / 1000);
        first.push(firstMs / 1000);
        registry.push(regUs / 1e6);
        (wasLeader ? leaderRuns : otherRuns).push(allMs / 1000);
        (wasRaftLeader ? raftLeaderRuns : raftOtherRuns).push(allMs / 1000);
        log(
          `failover run ${run + 1}/${runs}: cut ${victim}${wasLeader ? ' (engine leader)' : ''}` +
            `${wasRaftLeader ? ' (etcd raft leader)' : ''}, ${moving.length} units: ` +
            `first active ${firstMs.toFixed(0)} ms, all ${allMs.toFixed(0)} ms, registry ${(regUs / 1000).toFixed(0)} ms`,
        );

        bootMachine(victim);
        await waitFor(
          `${victim} rejoined`,
          async () =>
            (await etcdMemberHealthy(victim)) && (await watch.kv.get(`machine/${victimId}`)) !== undefined,
          90_000,
          250,
        );
        await sleep(1000);
      });
    }
  } finally {
    await restoreMachines();
    await ctl(allMachines[0]!, 'destroy', ...units);
  }
  const rows: Row[] = [
    ['failover after power cut: all units active elsewhere', ...stats(all), 's', '17–35 s'],
    ['  first unit active elsewhere', ...stats(first), 's', ''],
    ['  registry shows all active (host watch)', ...stats(registry), 's', ''],
  ];
  if (leaderRuns.length > 0)
    rows.push(['  victim was the engine leader', ...stats(leaderRuns), 's', '+ ≤ 12 s']);
  if (otherRuns.length > 0) rows.push(['  victim was not the leader', ...stats(otherRuns), 's', '']);
  if (raftLeaderRuns.length > 0)
    rows.push(["  victim's etcd member was the raft leader", ...stats(raftLeaderRuns), 's', '']);
  if (raftOtherRuns.length > 0)
    rows.push(["  victim's etcd member was a follower", ...stats(raftOtherRuns), 's', '']);

  return rows;
}

/** Seconds of one start/destroy run (NaN: did not finish in time). */
interface BulkRun {
  submitS: number;
  activeS: number;
  destroyCmdS: number;
  goneS: number;
}

/** The CLI's per-request timeout in the bulk runs: the agents are busy, and so is this shared host. */
const BULK_CTL = ['--request-timeout=30'];

/** When `frac` of `n` units had become active (s since t0), from the host watch's activeSince times. */
function activeAt(times: number[], n: number, frac: number, t0Us: number): number {
  const s = [...times].sort((x, y) => x - y);
  const i = Math.max(0, Math.ceil(n * frac) - 1);
  return i < s.length ? (s[i]! - t0Us) / 1e6 : NaN;
}

async function startMany(n: number, watch: StateWatch, trace: boolean, label: string): Promise<BulkRun> {
  const stem = `bench-n${Date.now().toString(36)}`;
  const template = `${stem}@.service`;
  await Promise.all(
    allMachines.map((m) => putFile(m, `${UNIT_DIR}/${template}`, sleepUnit([], 'cluster-real bench %i'))),
  );
  const names = Array.from({ length: n }, (_, i) => `${stem}@${i + 1}.service`);
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += 100) batches.push(names.slice(i, i + 100));
  const isMine = (u: string) => u.startsWith(`${stem}@`);
  const activeCount = () => {
    const s = new Set<string>();
    for (const st of watch.states.values())
      if (isMine(st.unit) && st.activeState === 'active') s.add(st.unit);
    return s.size;
  };

  const t0Us = monoNowUs();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    allMachines.map(async (m) => {
      for (let b = next++; b < batches.length; b = next++) {
        const r = await ctl(
          m,
          ...BULK_CTL,
          'start',
          '--no-block',
          ...batches[b]!.map((u) => `${UNIT_DIR}/${u}`),
        );
        if (r.code !== 0) throw new Error(`start batch ${b} in ${m}: ${r.stderr}`);
      }
    }),
  );
  const submitS = (performance.now() - t0) / 1000;
  log(`${label} start ${n}: submitted in ${submitS.toFixed(1)} s, ${activeCount()} active so far`);
  let activeS = NaN;
  try {
    await watch.until(`${n} units active`, () => activeCount() === n, 900_000);
    activeS = (performance.now() - t0) / 1000;
    const per = new Map<string, number>();
    const since: number[] = [];
    for (const st of watch.states.values())
      if (isMine(st.unit) && st.activeState === 'active') {
        per.set(st.machineID, (per.get(st.machineID) ?? 0) + 1);
        since.push(st.activeSinceUs);
      }
    log(
      `${label} start ${n}: all active after ${activeS.toFixed(1)} s; per machine ${[...per.values()].join('/')}; ` +
        `registry showed 1 % / 50 % / 100 % active at ${[0.01, 0.5, 1].map((f) => activeAt(since, n, f, t0Us).toFixed(2)).join(' / ')} s`,
    );
  } catch (err) {
    log(`${label} start ${n}: ${(err as Error).message} (${activeCount()} active)`);
  }
  if (trace)
    for (const m of allMachines) logSpans(log, `${label} start`, m, await journalSpans(m, t0Us, stem));
  // Clean up (also after a timeout): destroy them all and wait until every state record is gone.
  // A destroy call that fails is logged and retried (a unit left behind would skew later runs).
  const d0Us = monoNowUs();
  const d0 = performance.now();
  let failures = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    const left = new Set<string>();
    const listed = await ctl(allMachines[0]!, ...BULK_CTL, 'list-unit-files', '--no-legend', '--fields=unit');
    for (const u of listed.stdout.split('\n')) if (isMine(u.trim())) left.add(u.trim());
    if (listed.code === 0 && left.size === 0) break;
    const todo: string[][] = [];
    const list = listed.code === 0 ? [...left] : names;
    for (let i = 0; i < list.length; i += 100) todo.push(list.slice(i, i + 100));
    next = 0;
    await Promise.all(
      allMachines.map(async (m) => {
        for (let b = next++; b < todo.length; b = next++) {
          const r = await ctl(m, ...BULK_CTL, 'destroy', ...todo[b]!);
          if (r.code !== 0) {
            failures++;
            log(
              `destroy of ${todo[b]!.length} units in ${m} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}`,
            );
          }
        }
      }),
    );
  }
  const destroyCmdS = (performance.now() - d0) / 1000;
  let goneS = NaN;
  try {
    await watch.until(
      `${n} units gone`,
      () => ![...watch.states.values()].some((s) => isMine(s.unit)),
      300_000,
    );
    goneS = (performance.now() - d0) / 1000;
  } catch (err) {
    log((err as Error).message);
  }
  log(
    `${label} destroy ${n}: commands ${destroyCmdS.toFixed(1)} s (${failures} failed calls, retried), every state record gone after ${goneS.toFixed(1)} s`,
  );
  if (trace)
    for (const m of allMachines) logSpans(log, `${label} destroy`, m, await journalSpans(m, d0Us, stem));
  return { submitS, activeS, destroyCmdS, goneS };
}

/** Rows for the start/destroy runs of one variant (`this` or the baseline). */
function bulkRows(n: number, runs: BulkRun[], tag: string): Row[] {
  const col = (f: (r: BulkRun) => number) => stats(runs.map(f));
  return [
    [`start ${n} units: all active (from first submit)${tag}`, ...col((r) => r.activeS), 's', ''],
    [`  submit (start --no-block, 100 per call, 3 CLIs)${tag}`, ...col((r) => r.submitS), 's', ''],
    [`  throughput${tag}`, ...col((r) => n / r.activeS), 'units/s', ''],
    [`destroy ${n} units: every state record gone${tag}`, ...col((r) => r.goneS), 's', '153 s for 100'],
    [`  destroy commands (100 per call, 3 CLIs)${tag}`, ...col((r) => r.destroyCmdS), 's', ''],
  ];
}

/**
 * The start/destroy runs, each on a fresh cluster; with a baseline checkout, its agents and CLI run
 * before this one's in every round (same host load, interleaved), and the rows carry both plus the
 * ratio of the medians.
 */
async function bulk(o: Options): Promise<Row[]> {
  const variants: { label: string; project: string | undefined }[] = [
    ...(o.baseline ? [{ label: 'baseline', project: o.baseline }] : []),
    { label: 'this', project: process.env.TESTENV_MACHINE_PROJECT },
  ];
  const results = new Map<string, BulkRun[]>(variants.map((v) => [v.label, []]));
  const saved = process.env.TESTENV_MACHINE_PROJECT;
  try {
    for (let run = 0; run < o.startRuns; run++) {
      for (const v of variants) {
        if (v.project === undefined) delete process.env.TESTENV_MACHINE_PROJECT;
        else process.env.TESTENV_MACHINE_PROJECT = v.project;
        log(
          `bulk run ${run + 1}/${o.startRuns} (${v.label}${v.project ? `: ${v.project}` : ''}): fresh cluster`,
        );
        await freshCluster();
        const r = await withWatch(endpointsOf(allMachines), (w) =>
          startMany(o.units, w, o.trace, `[${v.label} ${run + 1}]`),
        );
        results.get(v.label)!.push(r);
      }
    }
  } finally {
    if (saved === undefined) delete process.env.TESTENV_MACHINE_PROJECT;
    else process.env.TESTENV_MACHINE_PROJECT = saved;
  }
  if (!o.baseline) return bulkRows(o.units, results.get('this')!, '');
  const base = results.get('baseline')!;
  const mine = results.get('this')!;
  const ratio = (f: (r: BulkRun) => number) => median(mine.map(f)) / median(base.map(f));
  return [
    ...bulkRows(o.units, base, ' [baseline]'),
    ...bulkRows(o.units, mine, ''),
    ['  ratio of medians, start all active (this / baseline)', '', '', ratio((r) => r.activeS), '', '×', ''],
    ['  ratio of medians, destroy (this / baseline)', '', '', ratio((r) => r.goneS), '', '×', ''],
  ];
}

async function idle(seconds: number, watch: StateWatch): Promise<Row[]> {
  await sleep(10_000); // let the previous phase settle
  const rows: Row[] = [];
  for (const a of await sampleAgents(seconds, watch)) {
    const who = `${a.m}${a.leader ? ', engine leader' : ''}`;
    log(
      `idle ${who}: RSS ${a.rssMiB.map((x) => x.toFixed(1)).join(' ')} MiB; CPU ${a.cpuTotal.toFixed(2)} % over ${a.seconds.toFixed(0)} s`,
    );
    rows.push([`idle agent RSS (${who})`, ...stats(a.rssMiB), 'MiB', '']);
    rows.push([
      `idle agent CPU per 5 s (${who}; ${a.cpuTotal.toFixed(2)} % overall)`,
      ...stats(a.cpuPct),
      '% of a core',
      '',
    ]);
  }
  return rows;
}

export async function realClusterBench(args: string[]): Promise<Row[]> {
  const o = parseArgs(args);
  log('fresh cluster: cluster.sh wipe + up --ttl 3s --interval 1');
  const map = await freshCluster();
  const rows: Row[] = [];
  try {
    if (o.only.has('failover')) rows.push(...(await failover(map, o.runs)));
    for (const m of allMachines) if (!(await machineUp(m))) bootMachine(m);
    if (o.only.has('partition')) rows.push(...(await partitionWindows(o.partitionRuns)));
    if (o.only.has('start')) rows.push(...(await bulk(o)));
    if (o.only.has('idle'))
      await withWatch(endpointsOf(allMachines), async (watch) => {
        rows.push(...(await idle(o.idleS, watch)));
      });
  } finally {
    await restoreMachines();
  }
  return rows;
}

export default async function main(args: string[]): Promise<void> {
  const rows = await realClusterBench(args);
  printTable(
    'cluster-real: 3 systemd-nspawn machines (systemd 252), etcd members inside, agent_ttl=3s, interval 1s',
    REAL_CLUSTER_HEADER,
    rows,
  );
}
