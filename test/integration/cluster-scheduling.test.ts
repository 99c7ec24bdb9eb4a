/**
 * [X-Fleet] scheduling on a real 3-machine cluster (flotilla.service in m1..m3, etcd members in the
 * machines, agent_ttl=3s), driven through the CLI inside a machine like an operator would:
 * MachineOf, Conflicts, Replaces, Global, MachineMetadata, MachineID. Where a unit runs is checked
 * twice: in the registry (list-unit-files / list-units) and in systemd itself (`systemctl is-active`
 * inside every machine).
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import {
  AGENT_TTL_MS,
  allMachines,
  clusterSh,
  ctl,
  destroyUnits,
  freshCluster,
  isActive,
  listMachines,
  listUnitFiles,
  monoNowUs,
  placement,
  recoverCluster,
  restoreMachines,
  sleepUnit,
  uniq,
  unitTimes,
  waitFor,
  writeUnit,
  type ClusterMap,
} from '../support/cluster.js';
import { describeSystemd, powerCut } from '../support/testbed.js';

describeSystemd('cluster scheduling on real machines', () => {
  let map: ClusterMap;
  const created: string[] = [];
  /** A machine whose CLI answers (changed by tests that take a machine away). */
  let cli = allMachines[0]!;

  beforeAll(async () => {
    expect(allMachines.length, 'these scenarios need 3 machines').toBeGreaterThanOrEqual(3);
    map = await freshCluster();
  }, 180_000);

  afterEach(async () => {
    await recoverCluster(map);
    cli = allMachines[0]!;
    await destroyUnits(allMachines, created.splice(0));
  }, 120_000);

  afterAll(async () => {
    await restoreMachines();
  }, 120_000);

  /** Write units into the CLI machine and `start` them (blocking); returns the CLI result. */
  async function start(units: Record<string, string>, ...flags: string[]) {
    const paths: string[] = [];
    for (const [name, body] of Object.entries(units)) {
      if (!name.includes('@.')) created.push(name);
      paths.push(await writeUnit(cli, name, body));
    }
    return ctl(cli, 'start', ...flags, ...paths);
  }

  /** Machine names where the registry places each unit (list-unit-files target). */
  async function targets(units: string[]): Promise<Map<string, string>> {
    const rows = await listUnitFiles(cli);
    return new Map(units.map((u) => [u, map.name(rows.find((r) => r.unit === u)?.target ?? '-')]));
  }

  /** Wait until `unit` is active in systemd on exactly one machine, and return it. */
  async function runningOn(unit: string, timeoutMs = 15_000): Promise<string> {
    return waitFor(
      `${unit} active on exactly one machine`,
      async () => {
        const on: string[] = [];
        for (const m of allMachines) if ((await isActive(m, unit)) === 'active') on.push(m);
        return on.length === 1 ? on[0] : undefined;
      },
      timeoutMs,
    );
  }

  it('MachineOf: a follower is placed with its peer and moves with it when that machine loses power', async () => {
    const db = `${uniq('pair')}-db.service`;
    const web = db.replace('-db.service', '-web.service');
    const r = await start({ [db]: sleepUnit(), [web]: sleepUnit([`MachineOf=${db}`]) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Unit ${db} launched on `);
    expect(r.stdout).toContain(`Unit ${web} launched on `);

    const t = await targets([db, web]);
    const home = t.get(db)!;
    expect(allMachines).toContain(home);
    expect(t.get(web)).toBe(home);
    expect(await runningOn(db)).toBe(home);
    expect(await runningOn(web)).toBe(home);

    // Power cut the pair's machine; drive the CLI from another one.
    cli = allMachines.find((m) => m !== home)!;
    const survivors = allMachines.filter((m) => m !== home);
    const cutUs = monoNowUs();
    powerCut(home);
    const moved = await waitFor(
      `${db} and ${web} active on one surviving machine`,
      async () => {
        for (const m of survivors) {
          if ((await isActive(m, db)) === 'active' && (await isActive(m, web)) === 'active') return m;
        }
        return undefined;
      },
      30_000,
      200,
    );
    const [a, b] = await Promise.all([unitTimes(moved, db), unitTimes(moved, web)]);
    const failoverMs = (Math.max(a.activeEnterUs, b.activeEnterUs) - cutUs) / 1000;
    console.log(
      `[cluster] MachineOf pair moved ${home} -> ${moved} in ${failoverMs.toFixed(0)} ms after the power cut`,
    );
    expect(moved).not.toBe(home);
    // Both survivors never run a copy of the pair apart.
    for (const m of survivors.filter((s) => s !== moved)) {
      expect(await isActive(m, db)).not.toBe('active');
      expect(await isActive(m, web)).not.toBe('active');
    }
    const after = await targets([db, web]);
    expect(after.get(db)).toBe(moved);
    expect(after.get(web)).toBe(moved);
  }, 180_000);

  it('Conflicts: instances land on distinct machines; one more than machines is unschedulable and start fails fast', async () => {
    const stem = uniq('app');
    const template = `${stem}@.service`;
    const body = sleepUnit([`Conflicts=${stem}@*.service`]);
    await writeUnit(cli, template, body);
    const inst = [1, 2, 3, 4].map((i) => `${stem}@${i}.service`);
    created.push(...inst);

    const r = await ctl(cli, 'start', ...inst.slice(0, 3).map((n) => `/tmp/flotilla-cluster-tests/${n}`));
    expect(r.code, r.stderr).toBe(0);
    const t = await targets(inst.slice(0, 3));
    const where = [...t.values()];
    expect(new Set(where).size, `placements ${JSON.stringify([...t])}`).toBe(3);
    for (const [u, m] of t) expect(await runningOn(u)).toBe(m);

    const t0 = performance.now();
    const r4 = await ctl(cli, 'start', `/tmp/flotilla-cluster-tests/${inst[3]}`);
    const ms = performance.now() - t0;
    console.log(
      `[cluster] start of the 4th conflicting unit failed after ${ms.toFixed(0)} ms: ${r4.stderr.trim()}`,
    );
    expect(r4.code).toBe(1);
    expect(r4.stderr).toContain(`unit ${inst[3]} not scheduled: `);
    expect(r4.stderr).toMatch(/[Cc]onflict/);
    expect(ms).toBeLessThan(6000);

    const row = (await listUnitFiles(cli)).find((x) => x.unit === inst[3]);
    expect(row).toMatchObject({ dstate: 'launched', state: 'inactive', target: '-' });
    expect(row?.reason).toMatch(/[Cc]onflict/);
    expect(await Promise.all(allMachines.map((m) => isActive(m, inst[3]!)))).not.toContain('active');
  }, 180_000);

  it('Replaces: A steered onto B’s machine evicts B to another machine', async () => {
    const b = `${uniq('old')}.service`;
    const rb = await start({ [b]: sleepUnit() });
    expect(rb.code, rb.stderr).toBe(0);
    const home = (await targets([b])).get(b)!;
    expect(await runningOn(b)).toBe(home);

    const a = b.replace(/^old-/, 'new-');
    const ra = await start({ [a]: sleepUnit([`Replaces=${b}`, `MachineMetadata=name=${home}`]) });
    expect(ra.code, ra.stderr).toBe(0);
    expect(await runningOn(a)).toBe(home);
    const bNow = await waitFor(
      `${b} evicted from ${home}`,
      async () => {
        const m = await runningOn(b);
        return m !== home ? m : undefined;
      },
      20_000,
    );
    console.log(`[cluster] Replaces: ${a} on ${home}, ${b} evicted to ${bNow}`);
    const t = await targets([a, b]);
    expect(t.get(a)).toBe(home);
    expect(t.get(b)).toBe(bNow);
    expect(await isActive(home, b)).not.toBe('active');
  }, 180_000);

  it('Global: runs on every machine, and on a machine whose agent joins later', async () => {
    const last = allMachines[allMachines.length - 1]!;
    const others = allMachines.filter((m) => m !== last);
    await clusterSh('down', last);
    const g = `${uniq('everywhere')}.service`;
    const r = await start({ [g]: sleepUnit(['Global=true']) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Triggered global unit ${g} start`);
    await waitFor(
      `${g} active on ${others.join(',')}`,
      async () => (await Promise.all(others.map((m) => isActive(m, g)))).every((s) => s === 'active'),
      15_000,
    );
    expect(await isActive(last, g)).not.toBe('active');
    const files = await listUnitFiles(cli);
    expect(files.find((x) => x.unit === g)).toMatchObject({ dstate: 'launched', target: 'global' });

    const t0 = performance.now();
    await clusterSh('up', '--ttl', `${AGENT_TTL_MS / 1000}s`, '--interval', '1', last);
    await waitFor(`${g} active on ${last}`, async () => (await isActive(last, g)) === 'active', 20_000, 100);
    console.log(
      `[cluster] Global unit active on the joining machine ${(performance.now() - t0).toFixed(0)} ms after cluster.sh up ${last}`,
    );
    for (const m of allMachines) expect(await isActive(m, g), m).toBe('active');
    await waitFor(
      `list-units shows ${g} on every machine`,
      async () => {
        const on = (await placement(cli, [g])).get(g) ?? [];
        return on.length === allMachines.length;
      },
      10_000,
    );
  }, 180_000);

  it('MachineMetadata: one value, OR of two values (two lines and quoted), AND of two keys without a match', async () => {
    const stem = uniq('md');
    const [m1, m2, m3] = allMachines as [string, string, string];
    const one = `${stem}-one.service`;
    const orLines = `${stem}-or.service`;
    const orQuoted = `${stem}-orq.service`;
    const r = await start({
      [one]: sleepUnit([`MachineMetadata=name=${m2}`]),
      [orLines]: sleepUnit([`MachineMetadata=name=${m1}`, `MachineMetadata=name=${m3}`]),
      [orQuoted]: sleepUnit([`MachineMetadata="name=${m1}" "name=${m3}"`]),
    });
    expect(r.code, r.stderr).toBe(0);
    const t = await targets([one, orLines, orQuoted]);
    expect(t.get(one)).toBe(m2);
    expect([m1, m3]).toContain(t.get(orLines));
    expect([m1, m3]).toContain(t.get(orQuoted));
    for (const [u, m] of t) expect(await runningOn(u)).toBe(m);

    const and = `${stem}-and.service`;
    const t0 = performance.now();
    const ra = await start({ [and]: sleepUnit([`MachineMetadata=name=${m1}`, 'MachineMetadata=role=db']) });
    const ms = performance.now() - t0;
    expect(ra.code).toBe(1);
    expect(ra.stderr).toContain(`unit ${and} not scheduled: `);
    expect(ra.stderr).toMatch(/metadata/i);
    expect(ms).toBeLessThan(6000);
    const row = (await listUnitFiles(cli)).find((x) => x.unit === and);
    expect(row).toMatchObject({ target: '-' });
    expect(row?.reason).toMatch(/metadata/i);
    console.log(`[cluster] AND of two keys: start failed after ${ms.toFixed(0)} ms, reason: ${row?.reason}`);
  }, 180_000);

  it('MachineID: pinned by full ID and by 8-char prefix (IDs from list-machines --full); an unknown ID is unschedulable', async () => {
    const ms = await listMachines(cli);
    expect(ms.map((m) => m.id).sort()).toEqual([...map.ids.values()].sort());
    const byName = new Map(ms.map((m) => [m.metadata.name ?? '', m.id]));
    const [, m2, m3] = allMachines as [string, string, string];
    const stem = uniq('pin');
    const full = `${stem}-full.service`;
    const short = `${stem}-short.service`;
    const r = await start({
      [full]: sleepUnit([`MachineID=${byName.get(m3)}`]),
      [short]: sleepUnit([`MachineID=${byName.get(m2)!.slice(0, 8)}`]),
    });
    expect(r.code, r.stderr).toBe(0);
    const t = await targets([full, short]);
    expect(t.get(full)).toBe(m3);
    expect(t.get(short)).toBe(m2);
    expect(await runningOn(full)).toBe(m3);
    expect(await runningOn(short)).toBe(m2);

    const nowhere = `${stem}-nowhere.service`;
    const rn = await start({ [nowhere]: sleepUnit(['MachineID=0123456789abcdef0123456789abcdef']) });
    expect(rn.code).toBe(1);
    expect(rn.stderr).toContain(`unit ${nowhere} not scheduled: `);
  }, 180_000);
});
