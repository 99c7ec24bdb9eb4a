/**
 * `npm run bench -- agent-idle [--idle 30] [--units 300] [--churn 1000] [--node-options "..."] [--keep]`
 *
 * Issue 18's memory and idle-CPU figures, on the test environment's 3 systemd-nspawn machines
 * (flotilla.service in each, etcd members inside the machines, agent_ttl=3s). Needs root and a
 * running environment; it wipes flotilla's state first (cluster.sh wipe + up).
 *
 *   1. 0 units: each agent's RSS (VmRSS) and CPU (utime+stime) over `--idle` seconds, every 5 s.
 *   2. `--units` sleep units pinned to m1 (MachineMetadata=name=m1), all active: the same figures
 *      (m1 carries the units; m2, m3 see them in the cluster view only).
 *   3. After a churn: `--churn` more units started across the machines, all active, then all units
 *      destroyed until every state record is gone; the same figures again.
 *
 * `--node-options` sets NODE_OPTIONS for the agents (in /etc/flotilla/flotilla.env, which overrides
 * the unit's Environment=), to compare V8 settings: `--node-options ''` is node's defaults. At the end
 * the line is removed and the agents restarted, unless `--keep`.
 * fleet's figures (shared/reference/fleet.md) are printed beside: 15–16.5 MB at 0 units,
 * 18–23.5 MB with units, CPU 1.4 % (leader 6.6 %).
 */
import {
  UNIT_DIR,
  allMachines,
  ctl,
  freshCluster,
  inMachineOk,
  putFile,
  restoreMachines,
  sleep,
  sleepUnit,
} from '../test/support/cluster.js';
import { endpointsOf, sampleAgents, withWatch, type StateWatch } from './sim/cluster-watch.js';
import { printTable } from './table.js';
import { nMinMedianMax } from './stats.js';

type Row = (string | number)[];
const log = (msg: string) => console.error(`[agent-idle] ${msg}`);
const stats = nMinMedianMax;

interface Options {
  idleS: number;
  units: number;
  churn: number;
  nodeOptions?: string;
  /** Leave the agents as they are at the end (NODE_OPTIONS kept), e.g. for a heap snapshot. */
  keep: boolean;
}

function parseArgs(args: string[]): Options {
  const o: Options = { idleS: 30, units: 300, churn: 1000, keep: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--keep') {
      o.keep = true;
      continue;
    }
    const v = args[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--node-options') {
      o.nodeOptions = v;
      continue;
    }
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${a} needs a number >= 0`);
    if (a === '--idle') o.idleS = n;
    else if (a === '--units') o.units = Math.round(n);
    else if (a === '--churn') o.churn = Math.round(n);
    else throw new Error(`unknown argument ${a} (--idle S --units N --churn N --node-options "...")`);
  }
  return o;
}

/**
 * NODE_OPTIONS for every agent (a line in flotilla.env, which overrides the unit's Environment=), or
 * with `undefined` the line removed (the unit's own again); the agents are restarted.
 */
async function setNodeOptions(value: string | undefined): Promise<void> {
  const add = value === undefined ? '' : ' && printf "NODE_OPTIONS=%s\\n" "$1" >> /etc/flotilla/flotilla.env';
  const script = `sed -i "/^NODE_OPTIONS=/d" /etc/flotilla/flotilla.env${add} && systemctl restart flotilla`;
  for (const m of allMachines) await inMachineOk(m, 'sh', '-c', script, 'sh', value ?? '');
}

/** Start `names` in batches of 50 from every machine at once; a failed call is retried (start is idempotent). */
async function submit(verb: 'start' | 'destroy', names: string[]): Promise<void> {
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += 50) batches.push(names.slice(i, i + 50));
  let next = 0;
  await Promise.all(
    allMachines.map(async (m) => {
      for (let b = next++; b < batches.length; b = next++) {
        const args =
          verb === 'start'
            ? ['start', '--no-block', ...batches[b]!.map((u) => `${UNIT_DIR}/${u}`)]
            : ['destroy', ...batches[b]!];
        for (let attempt = 1; ; attempt++) {
          const r = await ctl(m, ...args);
          if (r.code === 0) break;
          if (attempt === 5) throw new Error(`${verb} batch ${b} in ${m}: ${r.stderr}`);
          log(`${verb} batch ${b} in ${m} exited ${r.code} (${r.stderr.trim()}); again`);
        }
      }
    }),
  );
}

async function template(stem: string, xfleet: string[]): Promise<(i: number) => string> {
  await Promise.all(
    allMachines.map((m) =>
      putFile(m, `${UNIT_DIR}/${stem}@.service`, sleepUnit(xfleet, 'agent-idle bench %i')),
    ),
  );
  return (i) => `${stem}@${i}.service`;
}

function activeCount(watch: StateWatch, stem: string): number {
  const s = new Set<string>();
  for (const st of watch.states.values())
    if (st.unit.startsWith(`${stem}@`) && st.activeState === 'active') s.add(st.unit);
  return s.size;
}

async function phase(label: string, seconds: number, watch: StateWatch, rows: Row[]): Promise<void> {
  await sleep(10_000); // let the previous phase settle
  for (const a of await sampleAgents(seconds, watch)) {
    const who = `${a.m}${a.leader ? ', leader' : ''}`;
    log(
      `${label} ${who}: RSS ${a.rssMiB.map((x) => x.toFixed(1)).join(' ')} MiB; CPU ${a.cpuTotal.toFixed(2)} %`,
    );
    const fleetRss = label.startsWith('0 units') ? '15–16.5 MB' : '18–23.5 MB';
    rows.push([`${label}: RSS (${who})`, ...stats(a.rssMiB), 'MiB', fleetRss]);
    rows.push([
      `${label}: CPU per 5 s (${who}; ${a.cpuTotal.toFixed(2)} % overall)`,
      ...stats(a.cpuPct),
      '% of a core',
      a.leader ? '6.6 %' : '1.4 %',
    ]);
  }
}

export default async function main(args: string[]): Promise<void> {
  const o = parseArgs(args);
  log('fresh cluster: cluster.sh wipe + up --ttl 3s --interval 1');
  await freshCluster();
  if (o.nodeOptions !== undefined) {
    log(`agents restarted with NODE_OPTIONS=${o.nodeOptions}`);
    await setNodeOptions(o.nodeOptions);
    await sleep(10_000);
  }
  const rows: Row[] = [];
  try {
    await withWatch(endpointsOf(allMachines), async (watch) => {
      await phase('0 units', o.idleS, watch, rows);

      const pinned = `idle-p${Date.now().toString(36)}`;
      const p = await template(pinned, ['MachineMetadata=name=m1']);
      const pNames = Array.from({ length: o.units }, (_, i) => p(i + 1));
      await submit('start', pNames);
      await watch.until(`${o.units} units active`, () => activeCount(watch, pinned) === o.units, 600_000);
      log(`${o.units} units active on m1`);
      await phase(`${o.units} units on m1`, o.idleS, watch, rows);

      const churn = `idle-c${Date.now().toString(36)}`;
      const c = await template(churn, []);
      const cNames = Array.from({ length: o.churn }, (_, i) => c(i + 1));
      await submit('start', cNames);
      await watch.until(`${o.churn} units active`, () => activeCount(watch, churn) === o.churn, 900_000);
      log(`churn: ${o.churn} more units active; destroying all ${o.units + o.churn}`);
      await submit('destroy', [...pNames, ...cNames]);
      await watch.until(
        'every state record gone',
        () =>
          ![...watch.states.values()].some(
            (s) => s.unit.startsWith(`${pinned}@`) || s.unit.startsWith(`${churn}@`),
          ),
        600_000,
      );
      await phase(`after ${o.units + o.churn}-unit churn, 0 units`, o.idleS, watch, rows);
    });
  } finally {
    if (o.nodeOptions !== undefined && !o.keep) await setNodeOptions(undefined).catch(() => undefined);
    await restoreMachines();
  }
  printTable(
    `agent-idle: 3 systemd-nspawn machines, agent_ttl=3s${o.nodeOptions !== undefined ? `, NODE_OPTIONS=${o.nodeOptions || '(none)'}` : ''}`,
    ['measure', 'n', 'min', 'median', 'max', 'unit', 'fleet v1.0'],
    rows,
  );
}
