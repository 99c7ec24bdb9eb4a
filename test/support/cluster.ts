/**
 * Helpers for the real-machine cluster suites (test/integration/cluster-*.test.ts) and the
 * real-cluster benchmark (bench/cluster-real.ts): a flotilla agent runs as `flotilla.service` in each
 * test machine (test/env/cluster.sh) against the etcd members inside the machines.
 *
 * Everything that talks to a machine is asynchronous (execFile of test/env/exec.sh or cluster.sh), so
 * several machines can be watched at once; every child is awaited, so no test leaves one running.
 *
 * Timing: the machines share the host's kernel and therefore its CLOCK_MONOTONIC. systemd's
 * `*TimestampMonotonic` properties (µs) inside any machine and `process.hrtime` on the host are one
 * clock, so failover and duplicate windows are computed from systemd's own transition timestamps,
 * not from polling latency (`monoNowUs`, `unitTimes`).
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { envDir, heal, bootMachine, machineIp, machines as runningAtImport } from './testbed.js';

/** The cluster's settings for every suite: `cluster.sh up --ttl 3s --interval 1`. */
export const AGENT_TTL_MS = 3000;
export const RECONCILE_INTERVAL_MS = 1000;

/** The etcd endpoint layout the agents get (cluster.sh): 'local' = only 127.0.0.1:2379, else every member. */
export const ETCD_LAYOUT =
  process.env.TESTENV_ETCD_LAYOUT === 'local' ? 'local member only' : 'all members listed';

/** Directory inside the machines where the suites write their unit files. */
export const UNIT_DIR = '/tmp/flotilla-cluster-tests';

/** Every machine of the test environment (also those that are down right now), e.g. m1..m3. */
export const allMachines: readonly string[] = (() => {
  const state = process.env.TESTENV_STATE ?? '/var/lib/flotilla-testenv';
  let names: string[] = [];
  try {
    names = readdirSync(`${state}/machines`).filter((n) => /^m\d+$/.test(n));
  } catch {
    /* no state dir: fall back to what env.sh said */
  }
  const set = new Set([...runningAtImport, ...names]);
  return [...set].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
})();

export interface Run {
  stdout: string;
  stderr: string;
  code: number;
  /** Wall time of the command, ms. */
  ms: number;
}

/** Run a program asynchronously; never throws for a non-zero exit (see `code`). */
export function run(file: string, args: string[], timeoutMs = 120_000): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ stdout, stderr: err && !stderr ? err.message : stderr, code, ms: performance.now() - t0 });
      },
    );
  });
}

/** Run CMD inside machine m (test/env/exec.sh). */
export function inMachine(m: string, ...cmd: string[]): Promise<Run> {
  return run('bash', [`${envDir}exec.sh`, m, ...cmd]);
}

/** Like inMachine, but throws (with stderr) on a non-zero exit; returns stdout. */
export async function inMachineOk(m: string, ...cmd: string[]): Promise<string> {
  const r = await inMachine(m, ...cmd);
  if (r.code !== 0) throw new Error(`${m}: ${cmd.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Run a test/env/cluster.sh subcommand; throws on failure. */
export async function clusterSh(...args: string[]): Promise<string> {
  const r = await run('bash', [`${envDir}cluster.sh`, ...args], 300_000);
  if (r.code !== 0) throw new Error(`cluster.sh ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The CLI inside machine m: `cluster.sh ctl m ARGS...` (cluster.sh's own error line is dropped from stderr). */
export async function ctl(m: string, ...args: string[]): Promise<Run> {
  const r = await run('bash', [`${envDir}cluster.sh`, 'ctl', m, ...args]);
  return { ...r, stderr: r.stderr.replace(/^\[testenv\] ERROR: cluster\.sh: .*\n?/gm, '') };
}

/** The CLI inside m; throws with its stderr on a non-zero exit. Returns stdout. */
export async function ctlOk(m: string, ...args: string[]): Promise<string> {
  const r = await ctl(m, ...args);
  if (r.code !== 0) {
    throw new Error(
      `flotilla ${args.join(' ')} (in ${m}) exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/** fleetctl's tabwriter output (TAB padding) as rows of cells. */
export function table(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(/\t+/));
}

export interface MachineRow {
  id: string;
  ip: string;
  metadata: Record<string, string>;
}

export async function listMachines(from: string): Promise<MachineRow[]> {
  const out = await ctlOk(from, 'list-machines', '--full', '--no-legend');
  return table(out).map(([id = '', ip = '', md = '']) => ({
    id,
    ip,
    metadata: Object.fromEntries(
      md === '-'
        ? []
        : md.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    ),
  }));
}

export interface UnitRow {
  unit: string;
  machineID: string;
  ip: string;
  active: string;
  sub: string;
}

/** `list-units --full`: one row per (unit, machine) state record. */
export async function listUnits(from: string): Promise<UnitRow[]> {
  const out = await ctlOk(from, 'list-units', '--full', '--no-legend', '--fields=unit,machine,active,sub');
  return table(out).map(([unit = '', machine = '', active = '', sub = '']) => {
    const [machineID = '', ip = ''] = machine.split('/');
    return { unit, machineID, ip, active, sub };
  });
}

export interface UnitFileRow {
  unit: string;
  dstate: string;
  state: string;
  /** Machine ID (full), 'global', or '-'. */
  target: string;
  reason: string;
}

/** `list-unit-files --full --fields=unit,dstate,state,target,reason`. */
export async function listUnitFiles(from: string): Promise<UnitFileRow[]> {
  const out = await ctlOk(
    from,
    'list-unit-files',
    '--full',
    '--no-legend',
    '--fields=unit,dstate,state,target,reason',
  );
  return table(out).map(([unit = '', dstate = '', state = '', target = '', reason = '']) => ({
    unit,
    dstate,
    state,
    target: target.split('/')[0] ?? target,
    reason,
  }));
}

/** Write a file inside machine m (its parent directory is created). */
export async function putFile(m: string, path: string, content: string): Promise<void> {
  await inMachineOk(
    m,
    'sh',
    '-c',
    'mkdir -p "$(dirname "$2")" && printf %s "$1" > "$2"',
    'sh',
    content,
    path,
  );
}

/** Write a unit file into UNIT_DIR inside m; returns its path there. */
export async function writeUnit(m: string, name: string, body: string): Promise<string> {
  const path = `${UNIT_DIR}/${name}`;
  await putFile(m, path, body);
  return path;
}

/** A long-running service (`sleep infinity`) with optional [X-Fleet] lines. */
export function sleepUnit(xfleet: string[] = [], description = 'flotilla cluster test'): string {
  const x = xfleet.length > 0 ? `\n[X-Fleet]\n${xfleet.join('\n')}\n` : '';
  return `[Unit]\nDescription=${description}\n\n[Service]\nExecStart=/bin/sleep infinity\n${x}`;
}

let seq = 0;
/** A name stem unique to this process and call: `<stem>-<base36 time><seq>`. */
export function uniq(stem: string): string {
  seq++;
  return `${stem}-${Date.now().toString(36)}${seq}`;
}

/** `systemctl is-active UNIT` inside m ('active', 'inactive', 'failed', ... or 'unreachable'). */
export async function isActive(m: string, unit: string): Promise<string> {
  const r = await inMachine(m, 'systemctl', 'is-active', unit);
  const s = r.stdout.trim();
  return s === '' ? 'unreachable' : s;
}

/** `systemctl show -p A,B,... UNIT` inside m, as a record. */
export async function unitProps(m: string, unit: string, props: string[]): Promise<Record<string, string>> {
  const out = await inMachineOk(m, 'systemctl', 'show', '-p', props.join(','), unit);
  const rec: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) rec[line.slice(0, i)] = line.slice(i + 1);
  }
  return rec;
}

export interface UnitTimes {
  activeState: string;
  mainPid: number;
  /** CLOCK_MONOTONIC µs of the last transitions (0 = never). */
  activeEnterUs: number;
  activeExitUs: number;
}

/** State, MainPID and the monotonic transition timestamps of a unit inside m. */
export async function unitTimes(m: string, unit: string): Promise<UnitTimes> {
  const p = await unitProps(m, unit, [
    'ActiveState',
    'MainPID',
    'ActiveEnterTimestampMonotonic',
    'ActiveExitTimestampMonotonic',
  ]);
  return {
    activeState: p.ActiveState ?? '',
    mainPid: Number(p.MainPID ?? 0),
    activeEnterUs: Number(p.ActiveEnterTimestampMonotonic ?? 0),
    activeExitUs: Number(p.ActiveExitTimestampMonotonic ?? 0),
  };
}

/** `unitTimes` for several units of one machine in one `systemctl show` call (same order). */
export async function unitsTimes(m: string, units: readonly string[]): Promise<UnitTimes[]> {
  if (units.length === 0) return [];
  const props = ['ActiveState', 'MainPID', 'ActiveEnterTimestampMonotonic', 'ActiveExitTimestampMonotonic'];
  const out = await inMachineOk(m, 'systemctl', 'show', '-p', props.join(','), ...units);
  const blocks = out.split(/\n\s*\n/).filter((b) => b.trim() !== '');
  if (blocks.length !== units.length)
    throw new Error(`systemctl show in ${m}: ${blocks.length} blocks for ${units.length} units`);
  return blocks.map((b) => {
    const p: Record<string, string> = {};
    for (const line of b.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) p[line.slice(0, i)] = line.slice(i + 1);
    }
    return {
      activeState: p.ActiveState ?? '',
      mainPid: Number(p.MainPID ?? 0),
      activeEnterUs: Number(p.ActiveEnterTimestampMonotonic ?? 0),
      activeExitUs: Number(p.ActiveExitTimestampMonotonic ?? 0),
    };
  });
}

/**
 * When systemd in m began stopping each unit (its "Stopping ..." job message: the unit leaves
 * `active` then), as CLOCK_MONOTONIC µs, from the journal; only stops after `afterUs`. Works after
 * the unit was unloaded (then `systemctl show` has no timestamps any more).
 */
export async function stopStartedUs(
  m: string,
  units: readonly string[],
  afterUs = 0,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (units.length === 0) return out;
  const r = await inMachineOk(
    m,
    'journalctl',
    '-o',
    'json',
    '--no-pager',
    ...units.flatMap((u) => ['-u', u]),
  );
  for (const line of r.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as Record<string, unknown>;
    const unit = typeof e.UNIT === 'string' ? e.UNIT : undefined;
    const us = Number(e.__MONOTONIC_TIMESTAMP);
    if (!unit || !units.includes(unit) || !(us > afterUs)) continue;
    if (e.JOB_TYPE !== 'stop' || e.CODE_FUNC !== 'job_emit_start_message') continue;
    if (!out.has(unit)) out.set(unit, us);
  }
  return out;
}

/** The host's CLOCK_MONOTONIC in µs: the clock of systemd's *TimestampMonotonic in the machines. */
export function monoNowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** MainPID of a unit inside m (0 when it is not running). */
export async function mainPid(m: string, unit: string): Promise<number> {
  return Number((await unitProps(m, unit, ['MainPID'])).MainPID ?? 0);
}

/** Machines (of `among`) where `unit` is active right now. */
export async function activeOn(unit: string, among: readonly string[] = allMachines): Promise<string[]> {
  const states = await Promise.all(among.map(async (m) => [m, await isActive(m, unit)] as const));
  return states.filter(([, s]) => s === 'active').map(([m]) => m);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `probe` until it returns something other than undefined/false; throws after `timeoutMs`
 * with `what` and the last value seen (or the last error).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  pollMs = 250,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (performance.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(pollMs);
  }
}

/** machine-id of every machine (read from /etc/machine-id; works with the agent down). */
export async function machineIds(ms: readonly string[] = allMachines): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const m of ms) ids.set(m, (await inMachineOk(m, 'cat', '/etc/machine-id')).trim());
  return ids;
}

/** Names and IDs of the cluster's machines, both ways. */
export class ClusterMap {
  constructor(readonly ids: Map<string, string>) {}
  id(m: string): string {
    const id = this.ids.get(m);
    if (!id) throw new Error(`unknown machine ${m}`);
    return id;
  }
  /** Machine name (mK) of a machine ID, also for an 8-char prefix; '?<id>' when unknown. */
  name(id: string): string {
    for (const [m, mid] of this.ids) if (mid === id || (id.length >= 8 && mid.startsWith(id))) return m;
    return `?${id}`;
  }
  get names(): string[] {
    return [...this.ids.keys()];
  }
}

/** Is machine m running (its systemd answers)? */
export async function machineUp(m: string): Promise<boolean> {
  return (await inMachine(m, 'true')).code === 0;
}

/** Is the etcd member inside m healthy (from inside m)? */
export async function etcdMemberHealthy(m: string): Promise<boolean> {
  const r = await inMachine(
    m,
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    '--endpoints=http://127.0.0.1:2379',
    '--command-timeout=2s',
    'endpoint',
    'health',
  );
  return r.code === 0 && /is healthy/.test(r.stdout + r.stderr);
}

/** The machine whose etcd member is the raft leader now (asked from inside `from`). */
export async function etcdRaftLeader(from: string, ms: readonly string[] = allMachines): Promise<string> {
  const ip = (m: string) => {
    try {
      return machineIp(m);
    } catch {
      return `10.214.0.${10 + Number(m.slice(1))}`; // not running when testbed.ts was imported
    }
  };
  const eps = ms.map((m) => `http://${ip(m)}:2379`).join(',');
  const out = await inMachineOk(
    from,
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    `--endpoints=${eps}`,
    '--command-timeout=2s',
    'endpoint',
    'status',
    '-w',
    'json',
  );
  // member IDs are uint64: compare them as text, not as (rounded) JSON numbers
  const st = JSON.parse(out.replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"')) as {
    Endpoint: string;
    Status: { header: { member_id: string }; leader: string };
  }[];
  const lead = st.find((x) => x.Status.header.member_id === x.Status.leader);
  const m = ms.find((x) => lead?.Endpoint.includes(`//${ip(x)}:`));
  if (!m) throw new Error(`no etcd raft leader in ${out}`);
  return m;
}

/**
 * Wait until every machine in `ms` is registered in the cluster (list-machines seen from `from`)
 * and its etcd member is healthy again.
 */
export async function waitForMembers(
  from: string,
  map: ClusterMap,
  ms: readonly string[],
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `etcd members healthy in ${ms.join(',')}`,
    async () => (await Promise.all(ms.map(etcdMemberHealthy))).every(Boolean),
    timeoutMs,
    300,
  );
  await waitFor(
    `machines ${ms.join(',')} in list-machines (from ${from})`,
    async () => {
      const listed = new Set((await listMachines(from)).map((r) => r.id));
      return ms.every((m) => listed.has(map.id(m)));
    },
    timeoutMs,
    300,
  );
}

/**
 * After a failure-injecting test: `restoreMachines`, then wait until every machine is back in the
 * cluster. An agent that does not rejoin within `graceMs` (a bug the test has already reported) is
 * restarted, so that the next test starts from a whole cluster; that is logged.
 */
export async function recoverCluster(map: ClusterMap, graceMs = 20_000): Promise<void> {
  await restoreMachines();
  const from = allMachines[0]!;
  try {
    await waitForMembers(from, map, allMachines, graceMs);
    return;
  } catch (err) {
    console.log(`[cluster] recovery: ${(err as Error).message}; restarting the agents that did not rejoin`);
  }
  const listed = new Set((await listMachines(from).catch(() => [])).map((r) => r.id));
  for (const m of allMachines)
    if (!listed.has(map.id(m))) await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
  await waitForMembers(from, map, allMachines);
}

/**
 * Undo whatever a failure-injecting test may have left: heal each machine's partition, boot
 * machines that are down, start the etcd member and the agent wherever they are stopped. Does not
 * wipe anything. Returns the machines it had to fix.
 */
export async function restoreMachines(ms: readonly string[] = allMachines): Promise<string[]> {
  const fixed: string[] = [];
  for (const m of ms) {
    try {
      heal(m);
    } catch {
      /* not partitioned */
    }
  }
  for (const m of ms) {
    if (!(await machineUp(m))) {
      bootMachine(m);
      fixed.push(m);
    }
  }
  await Promise.all(
    ms.map(async (m) => {
      for (const svc of ['flotilla-etcd', 'flotilla']) {
        const st = (await inMachine(m, 'systemctl', 'is-active', svc)).stdout.trim();
        // On fresh machines the agent is not installed yet (cluster.sh up installs it).
        const load = (
          await inMachine(m, 'systemctl', 'show', '-p', 'LoadState', '--value', svc)
        ).stdout.trim();
        if (st !== 'active' && load !== 'not-found') {
          await inMachine(m, 'systemctl', 'reset-failed', svc);
          await inMachineOk(m, 'systemctl', 'start', svc);
          if (!fixed.includes(m)) fixed.push(m);
        }
      }
    }),
  );
  return fixed;
}

/**
 * A clean cluster for a suite: restore the machines, `cluster.sh wipe`, `cluster.sh up --ttl 3s
 * --interval 1`, then wait until every machine is listed and an engine leader answers.
 */
export async function freshCluster(): Promise<ClusterMap> {
  await restoreMachines();
  await waitFor(
    'every etcd member healthy',
    async () => (await Promise.all(allMachines.map(etcdMemberHealthy))).every(Boolean),
    60_000,
    300,
  );
  await clusterSh('wipe');
  await clusterSh(
    'up',
    '--ttl',
    `${AGENT_TTL_MS / 1000}s`,
    '--interval',
    String(RECONCILE_INTERVAL_MS / 1000),
  );
  const map = new ClusterMap(await machineIds());
  await waitForMembers(allMachines[0]!, map, allMachines);
  return map;
}

/** Destroy units (from the first machine of `from` that answers); ignores failures. */
export async function destroyUnits(from: readonly string[], units: string[]): Promise<void> {
  if (units.length === 0) return;
  for (const m of from) {
    const r = await ctl(m, 'destroy', ...units);
    if (r.code === 0) return;
  }
}

/** Where each of `units` runs according to list-units (only `active` rows), seen from `from`. */
export async function placement(from: string, units: readonly string[]): Promise<Map<string, string[]>> {
  const rows = await listUnits(from);
  const out = new Map<string, string[]>();
  for (const u of units)
    out.set(
      u,
      rows.filter((r) => r.unit === u && r.active === 'active').map((r) => r.machineID),
    );
  return out;
}

/** The journal of flotilla.service inside m since `since` (systemd time spec), for bug reports. */
export async function agentJournal(m: string, since = '-5min'): Promise<string> {
  const r = await inMachine(
    m,
    'journalctl',
    '-u',
    'flotilla',
    '--no-pager',
    '-o',
    'short-precise',
    '--since',
    since,
  );
  return r.stdout;
}

/**
 * The lifecycle every real-machine cluster suite shares, registered on the current `describe`:
 * a fresh cluster before the suite, machines and units restored after each test, machines back
 * up after the suite. `created` collects the unit names a test starts (destroyed after it).
 */
/**
 * The agents run in the layout the suite names say (ETCD_LAYOUT): in `local`, each machine's
 * flotilla.env names only its own member, http://127.0.0.1:2379; otherwise every member, one per
 * machine. Without this a layout pass could silently test the other layout.
 */
export async function expectEtcdLayout(): Promise<void> {
  for (const m of allMachines) {
    const servers = await machineEtcdServers(m);
    if (process.env.TESTENV_ETCD_LAYOUT === 'local') {
      expect(servers, `${m}: etcd_servers in the local-member layout`).toBe('http://127.0.0.1:2379');
    } else {
      expect(servers.split(',').filter(Boolean), `${m}: etcd_servers lists every member`).toHaveLength(
        allMachines.length,
      );
    }
  }
}

/** The etcd_servers the agent in m was started with (its flotilla.env). */
export async function machineEtcdServers(m: string): Promise<string> {
  const env = await inMachineOk(m, 'cat', '/etc/flotilla/flotilla.env');
  return /^FLOTILLA_ETCD_SERVERS=(.*)$/m.exec(env)?.[1] ?? '';
}

export function useCluster(): { map: () => ClusterMap; created: string[] } {
  let map: ClusterMap | undefined;
  const created: string[] = [];
  beforeAll(async () => {
    expect(allMachines.length).toBeGreaterThanOrEqual(3);
    map = await freshCluster();
    await expectEtcdLayout();
  }, 180_000);
  afterEach(async () => {
    await recoverCluster(map!);
    await destroyUnits(allMachines, created.splice(0));
  }, 180_000);
  afterAll(async () => {
    await restoreMachines();
  }, 120_000);
  return { map: () => map!, created };
}
