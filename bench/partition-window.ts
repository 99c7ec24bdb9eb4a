/**
 * `npm run bench -- cluster-real --only partition [--partition-runs N]`, or alone
 * `npm run bench -- partition-window [--runs N]`: the duplicate window of a network partition, in both
 * etcd endpoint layouts. Needs root and the test environment's machines; it wipes flotilla's state.
 *
 * For each layout (each agent knows only its local member, `etcd_servers=http://127.0.0.1:2379`, as
 * CoreOS and coreos-vagrant ran it; then every member listed), on a fresh cluster with 6 sleep units:
 * cut all traffic of the machine holding the most of them (partition.sh: its loopback, and so its
 * own etcd member without quorum, keeps answering), and measure on the host's monotonic clock
 *   - when the last unit was active on a survivor (systemd's ActiveEnterTimestampMonotonic),
 *   - when the last partitioned copy began to stop (the fence),
 *   - the duplicate window: the longest time one unit was active on both machines.
 * Then heal, wait until the cluster has converged (every machine listed, one active row per unit)
 * and repeat with the machine that now holds the most. The measurement is the one the partition test
 * bounds (test/support/partition-window.ts).
 */
import {
  AGENT_TTL_MS,
  RECONCILE_INTERVAL_MS,
  allMachines,
  ctl,
  destroyUnits,
  etcdMemberHealthy,
  freshCluster,
  listMachines,
  listUnits,
  machineEtcdServers,
  sleepUnit,
  unitsTimes,
  waitFor,
  writeUnit,
  type ClusterMap,
} from '../test/support/cluster.js';
import { partitionAndMeasure } from '../test/support/partition-window.js';
import { heal } from '../test/support/testbed.js';
import { REAL_CLUSTER_HEADER, nMinMedianMax as stats } from './stats.js';
import { printTable } from './table.js';

type Row = (string | number)[];
const log = (msg: string) => console.error(`[cluster-real] ${msg}`);

const LAYOUTS = [
  { env: 'local', label: 'local member only' },
  { env: undefined, label: 'all members listed' },
] as const;

const UNITS = 6;

/** unit → machine name of its one active row, or undefined while any unit has not exactly one. */
async function placement(from: string, map: ClusterMap, units: readonly string[]) {
  const rows = await listUnits(from);
  const where = new Map<string, string>();
  for (const u of units) {
    const mine = rows.filter((r) => r.unit === u);
    if (mine.length !== 1 || mine[0]!.active !== 'active') return undefined;
    where.set(u, map.name(mine[0]!.machineID));
  }
  return where;
}

interface LayoutRuns {
  label: string;
  newS: number[];
  fencedS: number[];
  windowMs: number[];
}

async function oneLayout(label: string, runs: number): Promise<LayoutRuns> {
  const map = await freshCluster();
  for (const m of allMachines) log(`${label}: ${m} etcd_servers=${await machineEtcdServers(m)}`);
  const from = allMachines[0]!;
  const stem = `bench-split-${Date.now().toString(36)}`;
  const units = Array.from({ length: UNITS }, (_, i) => `${stem}-${i + 1}.service`);
  const paths: string[] = [];
  for (const u of units) paths.push(await writeUnit(from, u, sleepUnit([], 'cluster-real partition bench')));
  const r = await ctl(from, 'start', ...paths);
  if (r.code !== 0) throw new Error(`start failed: ${r.stderr}`);
  const out: LayoutRuns = { label, newS: [], fencedS: [], windowMs: [] };
  const lastCut = new Map<string, number>(allMachines.map((m) => [m, -1]));
  const bound = AGENT_TTL_MS + RECONCILE_INTERVAL_MS;
  try {
    let where = await waitFor('every unit active once', () => placement(from, map, units), 30_000, 250);
    for (let run = 0; run < runs; run++) {
      const count = (m: string) => [...where.values()].filter((x) => x === m).length;
      const victim = [...allMachines].sort(
        (a, b) => count(b) - count(a) || lastCut.get(a)! - lastCut.get(b)!,
      )[0]!;
      lastCut.set(victim, run);
      const moving = [...where].filter(([, m]) => m === victim).map(([u]) => u);
      const survivors = allMachines.filter((m) => m !== victim);
      let p;
      try {
        p = await partitionAndMeasure(victim, moving, survivors, bound);
      } finally {
        heal(victim);
      }
      const still = p.units.filter((u) => u.oldStoppedAfterUs === undefined).length;
      out.newS.push(Math.max(...p.units.map((u) => u.newAfterUs)) / 1e6);
      if (still === 0) out.fencedS.push(Math.max(...p.units.map((u) => u.oldStoppedAfterUs!)) / 1e6);
      out.windowMs.push(Math.max(...p.units.map((u) => u.windowMs)));
      log(
        `partition ${label} run ${run + 1}/${runs}: ${victim}, ${moving.length} units` +
          (still ? `, ${still} partitioned copies NOT fenced` : '') +
          `\n  ${p.lines.join('\n  ')}`,
      );
      // Healed: the victim's copies stay stopped, it rejoins, one active row per unit.
      await waitFor(
        `${victim} rejoined, cluster converged`,
        async () => {
          if ((await unitsTimes(victim, moving)).some((t) => t.activeState === 'active')) return undefined;
          if (!(await etcdMemberHealthy(victim))) return undefined;
          if ((await listMachines(survivors[0]!)).length !== allMachines.length) return undefined;
          return placement(survivors[0]!, map, units);
        },
        60_000,
        250,
      ).then((w) => (where = w));
    }
  } finally {
    await destroyUnits(allMachines, units);
  }
  return out;
}

/** Rows (REAL_CLUSTER_HEADER columns). Ends in the all-members layout, the test environment's default. */
export async function partitionWindows(runs: number): Promise<Row[]> {
  const saved = process.env.TESTENV_ETCD_LAYOUT;
  const results: LayoutRuns[] = [];
  try {
    for (const l of LAYOUTS) {
      if (l.env === undefined) delete process.env.TESTENV_ETCD_LAYOUT;
      else process.env.TESTENV_ETCD_LAYOUT = l.env;
      log(`partition, etcd layout ${l.label}: fresh cluster`);
      results.push(await oneLayout(l.label, runs));
    }
  } finally {
    if (saved === undefined) delete process.env.TESTENV_ETCD_LAYOUT;
    else process.env.TESTENV_ETCD_LAYOUT = saved;
  }
  return results.flatMap((r) => [
    [
      `partition (${r.label}): duplicate window, longest unit per run`,
      ...stats(r.windowMs),
      'ms',
      'until the heal',
    ],
    [`  units active elsewhere, after the cut`, ...stats(r.newS), 's', '17–35 s'],
    [`  partitioned copies stopped (fenced), after the cut`, ...stats(r.fencedS), 's', 'at the heal'],
  ]);
}

export default async function main(args: string[]): Promise<void> {
  let runs = 5;
  for (let i = 0; i < args.length; i++) {
    const n = Number(args[i + 1]);
    if (args[i] === '--runs' && Number.isInteger(n) && n > 0) runs = n;
    else throw new Error(`unknown or bad argument ${args[i]} (--runs N, a positive whole number)`);
    i++;
  }
  printTable(
    'partition-window: 3 systemd-nspawn machines, etcd members inside, agent_ttl=3s, interval 1s',
    REAL_CLUSTER_HEADER,
    await partitionWindows(runs),
  );
}
