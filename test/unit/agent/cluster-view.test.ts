/**
 * ClusterView's per-machine indexes (schedulesOn / statesOn / jobsFor), which let an agent plan in
 * O(its units) instead of O(cluster): checked against a brute-force scan of the same snapshot after
 * every change, over a real embedded registry and its watch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterView } from '../../../src/agent/cluster-view.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry, type LeaderGuard } from '../../../src/registry/registry.js';

let dir: string;
let store: EmbeddedKvStore;
let registry: Registry;
let view: ClusterView;

const body = (extra = '') => `[Service]\nExecStart=/bin/true\n${extra}`;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-view-'));
  store = await EmbeddedKvStore.open({ dataDir: dir });
  registry = new Registry(store);
});
afterEach(async () => {
  view?.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function settle(): Promise<void> {
  const target = await store.revision();
  for (let i = 0; i < 200 && view.revision < target; i++) await new Promise((r) => setTimeout(r, 5));
  expect(view.revision).toBe(target);
}

/** What the indexes must say, computed the slow way from the full snapshot. */
function bruteForce(mid: string) {
  const snap = view.snap!;
  const scheduled = [...snap.schedules.values()].filter((r) => r.machineID === mid).map((r) => r.name);
  const states = [...snap.states].flatMap(([name, m]) => (m.has(mid) ? [name] : []));
  const jobs = view
    .schedulerJobs()
    .filter((j) => j.requirements.global || scheduled.includes(j.name))
    .map((j) => j.name);
  return { scheduled: scheduled.sort(), states: states.sort(), jobs: jobs.sort() };
}

function indexed(mid: string) {
  return {
    scheduled: view
      .schedulesOn(mid)
      .map((r) => r.name)
      .sort(),
    states: [...view.statesOn(mid).keys()].sort(),
    jobs: view
      .jobsFor(mid)
      .map((j) => j.name)
      .sort(),
  };
}

describe('ClusterView per-machine indexes', () => {
  it('follow schedules moving between machines, deletions, states and global units', async () => {
    const lease = (await store.grantLease(60)).id;
    for (const id of ['m1', 'm2'])
      await registry.registerMachine({ id, publicIP: '127.0.0.1', metadata: {}, version: 't' }, lease);
    for (let i = 0; i < 6; i++) await registry.createUnit(`u${i}.service`, body(), 'launched');
    await registry.createUnit('g.service', body('[X-Fleet]\nGlobal=true\n'), 'launched');
    const guard = (await registry.acquireLeadership('m1', lease)) as LeaderGuard;
    // Some placements exist before the snapshot, the rest arrive through the watch.
    await registry.writeSchedule(guard, [{ name: 'u0.service', machineID: 'm1' }]);
    view = new ClusterView(registry);
    await view.start();
    const check = async () => {
      await settle();
      for (const mid of ['m1', 'm2', 'm3']) expect(indexed(mid)).toEqual(bruteForce(mid));
    };
    await check();
    expect(indexed('m1').scheduled).toEqual(['u0.service']);

    await registry.writeSchedule(
      guard,
      [1, 2, 3, 4, 5].map((i) => ({ name: `u${i}.service`, machineID: i % 2 ? 'm1' : 'm2' })),
    );
    await check();
    expect(indexed('m2').scheduled).toEqual(['u2.service', 'u4.service']);
    expect(indexed('m2').jobs).toEqual(['g.service', 'u2.service', 'u4.service']);

    // u1 moves m1 → m2, u3 becomes unschedulable (no machine), u5's placement is removed.
    await registry.writeSchedule(guard, [
      { name: 'u1.service', machineID: 'm2' },
      { name: 'u3.service', reason: 'no machine matches' },
    ]);
    await registry.clearSchedule(guard, ['u5.service']);
    await registry.reportUnitState(
      {
        name: 'u1.service',
        machineID: 'm2',
        hash: 'h',
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
      },
      lease,
    );
    await registry.reportUnitState(
      {
        name: 'u0.service',
        machineID: 'm1',
        hash: 'h',
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
      },
      lease,
    );
    await check();
    expect(indexed('m1').scheduled).toEqual(['u0.service']);
    expect(indexed('m2').scheduled).toEqual(['u1.service', 'u2.service', 'u4.service']);
    expect(indexed('m2').states).toEqual(['u1.service']);

    // Destroying a unit removes its schedule; clearing a state removes it from the index.
    await registry.destroyUnit('u2.service');
    await registry.clearUnitState('u1.service', 'm2');
    await check();
    expect(indexed('m2').states).toEqual([]);
    expect(indexed('m2').scheduled).not.toContain('u2.service');
  });
});

describe("ClusterView and the engine leader's own writes", () => {
  it('a unit the leader moves away (or unschedules) leaves the old machine at once and stays gone after the watch event', async () => {
    const lease = (await store.grantLease(60)).id;
    for (const id of ['mx', 'my'])
      await registry.registerMachine({ id, publicIP: '127.0.0.1', metadata: {}, version: 't' }, lease);
    for (const n of ['a.service', 'c.service']) await registry.createUnit(n, body(), 'launched');
    const guard = (await registry.acquireLeadership('mx', lease)) as LeaderGuard;
    await registry.writeSchedule(guard, [
      { name: 'a.service', machineID: 'mx' },
      { name: 'c.service', machineID: 'mx' },
    ]);
    view = new ClusterView(registry);
    await view.start();
    await settle();
    let schedules = 0;
    view.on('changed', (k) => void (k.has('schedule') && schedules++));
    // The engine applies a successful plan write locally; its watch events come after (here they
    // are held back by applying first: on the leader the watch is usually that slow).
    const puts = [{ name: 'a.service', machineID: 'my' }];
    view.applyLocalSchedule(puts, ['c.service']);
    expect(schedules).toBe(1); // the agent on this machine is woken by the local write itself
    expect(indexed('mx').scheduled).toEqual([]);
    expect(indexed('my').scheduled).toEqual(['a.service']);
    await registry.writeSchedule(guard, puts);
    await registry.clearSchedule(guard, ['c.service']);
    await settle();
    // Before the fix mx still listed a.service and c.service here: its agent never stopped them.
    for (const mid of ['mx', 'my']) expect(indexed(mid)).toEqual(bruteForce(mid));
    expect(indexed('mx').jobs).toEqual([]);
  });
});

describe('Registry.evictMachine (liveness eviction)', () => {
  it('evicts only while the caller is still registered under its lease and the victim under the judged one', async () => {
    const a = (await store.grantLease(60)).id;
    const b = (await store.grantLease(60)).id;
    const rec = (id: string) => ({ id, publicIP: '127.0.0.1', metadata: {}, version: 't' });
    await registry.registerMachine(rec('ma'), a);
    await registry.registerMachine(rec('mb'), b);
    await registry.reportUnitState(
      {
        name: 'x.service',
        machineID: 'mb',
        hash: 'h',
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
      },
      b,
    );
    // A caller whose own registration is not current (wrong lease) is refused: nothing changes.
    expect(await registry.evictMachine({ id: 'mb', lease: b }, { id: 'ma', lease: b })).toBe(false);
    // A victim judged under an older lease is refused too.
    expect(await registry.evictMachine({ id: 'mb', lease: a }, { id: 'ma', lease: a })).toBe(false);
    expect((await registry.listMachines()).map((m) => m.id).sort()).toEqual(['ma', 'mb']);
    // The real thing: machine key gone, lease revoked with its unit states.
    expect(await registry.evictMachine({ id: 'mb', lease: b }, { id: 'ma', lease: a })).toBe(true);
    expect((await registry.listMachines()).map((m) => m.id)).toEqual(['ma']);
    expect(await registry.unitStatesOf('x.service')).toEqual([]);
    await expect(store.keepAliveOnce(b)).rejects.toMatchObject({ code: 'E_LEASE_NOT_FOUND' });
    // The machine record carries its lease (what probers judge by).
    expect((await registry.listMachines())[0]?.lease).toBe(a);
  });
});
