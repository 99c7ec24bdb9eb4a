/**
 * The agent's own lifecycle on a real 3-machine cluster (agent_ttl=3s):
 *   - `systemctl restart flotilla`, and `systemctl kill -s KILL flotilla` + `systemctl start flotilla`,
 *     on every machine in turn: the units are adopted, not restarted (same MainPID), nothing moves;
 *   - graceful `systemctl stop flotilla`: the machine's units are stopped there and active elsewhere
 *     within ~2 s (the machine leaves at once; no TTL wait), with no overlap.
 */
import { expect, it } from 'vitest';
import {
  AGENT_TTL_MS,
  ETCD_LAYOUT,
  RECONCILE_INTERVAL_MS,
  allMachines,
  ctl,
  inMachineOk,
  isActive,
  listMachines,
  listUnits,
  mainPid,
  monoNowUs,
  sleep,
  sleepUnit,
  uniq,
  unitTimes,
  waitFor,
  waitForMembers,
  writeUnit,
  useCluster,
} from '../support/cluster.js';
import { describeSystemd } from '../support/testbed.js';

describeSystemd(`cluster agent lifecycle on real machines (etcd layout: ${ETCD_LAYOUT})`, () => {
  const cluster = useCluster();
  const created = cluster.created;
  const cli = allMachines[0]!;

  /** Start `n` plain sleep units from `from`; returns name → machine (from systemd in the machines). */
  async function startUnits(stem: string, n: number, from = cli): Promise<Map<string, string>> {
    const names = Array.from({ length: n }, (_, i) => `${stem}-${i + 1}.service`);
    const paths: string[] = [];
    for (const name of names) paths.push(await writeUnit(from, name, sleepUnit()));
    created.push(...names);
    const r = await ctl(from, 'start', ...paths);
    expect(r.code, r.stderr).toBe(0);
    const where = new Map<string, string>();
    for (const u of names) {
      where.set(
        u,
        await waitFor(
          `${u} active on one machine`,
          async () => {
            const on: string[] = [];
            for (const m of allMachines) if ((await isActive(m, u)) === 'active') on.push(m);
            return on.length === 1 ? on[0] : undefined;
          },
          15_000,
        ),
      );
    }
    return where;
  }

  async function pids(where: Map<string, string>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [u, m] of where) out.set(u, await mainPid(m, u));
    return out;
  }

  const agentPid = async (m: string) =>
    Number((await inMachineOk(m, 'systemctl', 'show', '-p', 'MainPID', '--value', 'flotilla')).trim());

  /** Every unit still active where it was with the same MainPID, once in list-units, nowhere else. */
  async function expectUndisturbed(where: Map<string, string>, before: Map<string, number>, what: string) {
    const after = await pids(where);
    expect([...after], `MainPIDs after ${what}`).toEqual([...before]);
    const rows = await listUnits(cli);
    for (const [u, m] of where) {
      const mine = rows.filter((r) => r.unit === u);
      expect(mine, `${u} in list-units after ${what}`).toEqual([
        expect.objectContaining({ machineID: cluster.map().id(m), active: 'active', sub: 'running' }),
      ]);
      for (const other of allMachines.filter((x) => x !== m))
        expect(await isActive(other, u), `${u} on ${other}`).not.toBe('active');
    }
  }

  it('systemctl restart flotilla on every machine: units adopted, MainPID unchanged, nothing moves', async () => {
    const where = await startUnits(uniq('adopt-r'), 6);
    expect(new Set(where.values()).size, 'units spread over the machines').toBe(allMachines.length);
    const before = await pids(where);
    for (const m of allMachines) {
      const old = await agentPid(m);
      const t0 = performance.now();
      await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
      const ms = performance.now() - t0;
      const now = await agentPid(m);
      console.log(
        `[cluster] ${m}: systemctl restart flotilla took ${ms.toFixed(0)} ms (agent PID ${old} -> ${now})`,
      );
      expect(now).not.toBe(old);
      expect(now).toBeGreaterThan(0);
    }
    // Give a wrong decision (lease expiry, unschedule, restart) time to happen.
    await sleep(2 * AGENT_TTL_MS + RECONCILE_INTERVAL_MS);
    expect((await listMachines(cli)).length).toBe(allMachines.length);
    await expectUndisturbed(where, before, 'systemctl restart flotilla');
  }, 180_000);

  it('systemctl kill -s KILL flotilla + systemctl start flotilla on every machine: MainPID unchanged, nothing moves', async () => {
    const where = await startUnits(uniq('adopt-k'), 6);
    const before = await pids(where);
    for (const m of allMachines) {
      const old = await agentPid(m);
      const t0 = performance.now();
      await inMachineOk(m, 'systemctl', 'kill', '-s', 'KILL', 'flotilla');
      await inMachineOk(m, 'systemctl', 'start', 'flotilla');
      const ms = performance.now() - t0;
      const now = await agentPid(m);
      console.log(
        `[cluster] ${m}: kill -9 + start of flotilla took ${ms.toFixed(0)} ms (agent PID ${old} -> ${now})`,
      );
      expect(now).not.toBe(old);
      expect(now).toBeGreaterThan(0);
    }
    await sleep(2 * AGENT_TTL_MS + RECONCILE_INTERVAL_MS);
    expect((await listMachines(cli)).length).toBe(allMachines.length);
    await expectUndisturbed(where, before, 'kill -9 + start of flotilla');
  }, 180_000);

  it('graceful systemctl stop flotilla: the units are stopped there and active elsewhere within ~2 s, no overlap', async () => {
    const where = await startUnits(uniq('leave'), 6);
    // The machine holding the most of these units, but not the one we drive the CLI from.
    const counts = allMachines
      .filter((m) => m !== cli)
      .map((m) => [m, [...where.values()].filter((x) => x === m).length] as const)
      .sort((a, b) => b[1] - a[1]);
    const victim = counts[0]![0];
    const moving = [...where].filter(([, m]) => m === victim).map(([u]) => u);
    expect(moving.length).toBeGreaterThan(0);
    const staying = [...where].filter(([, m]) => m !== victim);
    const stayingPids = await pids(new Map(staying));

    const t0 = monoNowUs();
    const s0 = performance.now();
    await inMachineOk(victim, 'systemctl', 'stop', 'flotilla');
    const stopMs = performance.now() - s0;
    // The machine left on its own (lease revoked), it did not wait for its TTL to run out: it is
    // gone from list-machines as soon as the stop returned.
    const listedAfterStop = (await listMachines(cli)).map((m) => m.id);
    const survivors = allMachines.filter((m) => m !== victim);
    const moved = new Map<string, string>();
    await waitFor(
      `${moving.join(',')} active on ${survivors.join(' or ')}`,
      async () => {
        for (const u of moving) {
          if (moved.has(u)) continue;
          for (const m of survivors) if ((await isActive(m, u)) === 'active') moved.set(u, m);
        }
        return moved.size === moving.length;
      },
      15_000,
      100,
    );
    const lines: string[] = [];
    let worst = 0;
    for (const u of moving) {
      const [oldT, newT] = await Promise.all([unitTimes(victim, u), unitTimes(moved.get(u)!, u)]);
      const ms = (newT.activeEnterUs - t0) / 1000;
      const overlapMs = (oldT.activeExitUs - newT.activeEnterUs) / 1000;
      worst = Math.max(worst, ms);
      lines.push(
        `${u}: ${victim} -> ${moved.get(u)} active after ${ms.toFixed(0)} ms (overlap ${Math.max(0, overlapMs).toFixed(0)} ms)`,
      );
      expect(oldT.activeState, `${u} on ${victim}`).not.toBe('active');
      expect(oldT.activeExitUs, `${u} stopped on ${victim} before it started elsewhere`).toBeLessThanOrEqual(
        newT.activeEnterUs,
      );
    }
    console.log(
      `[cluster] graceful stop of flotilla in ${victim} (systemctl stop took ${stopMs.toFixed(0)} ms):\n  ${lines.join('\n  ')}`,
    );
    expect(listedAfterStop, `${victim} gone from list-machines when systemctl stop returned`).not.toContain(
      cluster.map().id(victim),
    );
    expect(
      worst,
      'units active elsewhere within ~2 s of the stop (less than agent_ttl: no TTL wait)',
    ).toBeLessThan(AGENT_TTL_MS);
    const rows = await listUnits(cli);
    expect(rows.filter((r) => r.machineID === cluster.map().id(victim))).toEqual([]);
    expect([...(await pids(new Map(staying)))]).toEqual([...stayingPids]);

    // Back in: the agent rejoins, nothing moves back (sticky placement).
    await inMachineOk(victim, 'systemctl', 'start', 'flotilla');
    await waitForMembers(cli, cluster.map(), allMachines);
    await sleep(AGENT_TTL_MS);
    for (const u of moving) {
      expect(await isActive(moved.get(u)!, u)).toBe('active');
      expect(await isActive(victim, u)).not.toBe('active');
    }
  }, 180_000);
});
