/**
 * GET /flotilla/v1/snapshot and GET /flotilla/v1/events?since=R over the real API server, cluster
 * view and embedded registry: the snapshot says what fleet v1's paged lists say, and a client that
 * applies `?since=R` lines to a snapshot taken at R while writes go on ends with the cluster's state
 * (no line lost, none doubled); a revision that can no longer be replayed gets `resync`.
 * The EventLog ring (bounded, shared by all clients) is tested on its own first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../../src/api/event-log.js';
import { sha1 } from '../../../src/registry/registry.js';
import { UnitFile } from '../../../src/unit/index.js';
import { Stream, call, startAgent, until, type Agent, type Target } from './harness.js';

describe('EventLog', () => {
  it('replays the lines after a revision, oldest first', () => {
    const log = new EventLog(10, 100);
    log.push(11, 'a');
    log.push(11, 'b');
    log.push(12, 'c');
    expect(log.since(10)).toEqual(['a', 'b', 'c']);
    expect(log.since(11)).toEqual(['c']);
    expect(log.since(12)).toEqual([]);
  });

  it('cannot replay past what it dropped, before its start, ahead of itself, or across a reset', () => {
    const log = new EventLog(0, 3);
    for (let r = 1; r <= 5; r++) log.push(r, `l${r}`);
    expect(log.size).toBe(3);
    expect(log.floor).toBe(2);
    expect(log.since(1)).toBeUndefined(); // l2 is gone
    expect(log.since(2)).toEqual(['l3', 'l4', 'l5']);
    expect(log.since(6)).toBeUndefined(); // not a revision this agent has seen
    log.reset(9);
    expect(log.since(5)).toBeUndefined();
    expect(log.since(9)).toEqual([]);
    expect(() => new EventLog(0, 0)).toThrow(/capacity/);
  });
});

const opts = [{ section: 'Service', name: 'ExecStart', value: '/bin/true' }];
const text = UnitFile.fromOptions(opts).serialize();
const M1 = '1'.repeat(32);
const M2 = '2'.repeat(32);

let a: Agent;
let t: Target;
let lease: string;

beforeAll(async () => {
  a = await startAgent({ pingMs: 300 });
  t = a.target;
  lease = (await a.store.grantLease(600)).id;
  for (const id of [M1, M2])
    await a.registry.registerMachine(
      { id, publicIP: '127.0.0.1', metadata: { name: id[0]! }, version: 'test' },
      lease,
    );
  expect(
    (
      await call(t, 'PATCH', '/fleet/v1/machines', [
        { op: 'add', path: `/${M1}/metadata/rack`, value: { value: 'r1' } },
      ])
    ).status,
  ).toBe(204);
  const guard = (await a.registry.acquireLeadership(M1, lease))!;
  const names = Array.from({ length: 150 }, (_, i) => `snap-${String(i).padStart(3, '0')}.service`);
  for (const name of names) await a.registry.createUnit(name, text, 'launched');
  expect(
    await a.registry.writeSchedule(
      guard,
      names.slice(0, 140).map((name, i) => ({ name, machineID: i % 2 ? M2 : M1 })),
    ),
  ).toBe(true);
  for (const [i, name] of names.slice(0, 100).entries())
    await a.registry.reportUnitState(
      {
        name,
        machineID: i % 2 ? M2 : M1,
        hash: sha1(text),
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        jobState: 'launched',
      },
      lease,
    );
});
afterAll(async () => {
  await a?.close();
});

/** All pages of a fleet v1 list. */
async function list(path: string, key: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let token = '';
  do {
    const r = await call(t, 'GET', `${path}${token ? `?nextPageToken=${token}` : ''}`);
    const body = r.json as Record<string, unknown>;
    out.push(...((body[key] as Record<string, unknown>[] | undefined) ?? []));
    token = (body.nextPageToken as string | undefined) ?? '';
  } while (token);
  return out;
}

type Snap = {
  revision: number;
  machineID: string;
  leader?: string;
  units: Record<string, unknown>[];
  states: Record<string, unknown>[];
  machines: Record<string, unknown>[];
};

describe('GET /flotilla/v1/snapshot', () => {
  it('is fleet v1’s units (without options), states and machines, at the view’s revision, in one response', async () => {
    await until('the view caught up', async () => a.view.revision === (await a.store.revision()));
    const r = await call(t, 'GET', '/flotilla/v1/snapshot');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const s = r.json as Snap;
    expect(s.revision).toBe(a.view.revision);
    expect(s.leader).toBe(M1);
    const units = await list('/fleet/v1/units', 'units');
    expect(units).toHaveLength(150);
    expect(s.units.map(({ hash: _h, ...u }) => u)).toEqual(units.map(({ options: _o, ...u }) => u));
    expect(s.units.every((u) => u.hash === sha1(text))).toBe(true);
    expect(s.units.filter((u) => u.machineID === undefined)).toHaveLength(10);
    expect(s.states).toEqual(await list('/fleet/v1/state', 'states'));
    expect(s.machines).toEqual(await list('/fleet/v1/machines', 'machines'));
    expect(s.machines.find((m) => m.id === M1)?.metadata).toEqual({ name: '1', rack: 'r1' });
    expect((await call(t, 'POST', '/flotilla/v1/snapshot', {})).status).toBe(405);
  });
});

describe('GET /flotilla/v1/events?since=R', () => {
  it('a snapshot at R plus the lines after R, taken while writes go on, is the cluster’s state: nothing lost or doubled', async () => {
    const writes = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const name = `snap-${String(i % 150).padStart(3, '0')}.service`;
        if (i % 5 === 4) await a.registry.destroyUnit(`snap-new-${i - 1}.service`);
        else if (i % 5 === 3) await a.registry.createUnit(`snap-new-${i}.service`, text, 'loaded');
        else if (i % 5 === 2)
          await a.registry.reportUnitState(
            {
              name,
              machineID: M2,
              hash: sha1(text),
              loadState: 'loaded',
              activeState: i % 2 ? 'failed' : 'active',
              subState: `sub${i}`,
              jobState: 'launched',
            },
            lease,
          );
        else await a.registry.setDesiredState(name, i % 2 ? 'loaded' : 'launched');
      }
    };
    // Writes before, during and after the snapshot and the stream's start.
    const busy = writes(0, 60);
    await new Promise((r) => setTimeout(r, 20));
    const snap = (await call(t, 'GET', '/flotilla/v1/snapshot')).json as Snap;
    const s = new Stream(t, `/flotilla/v1/events?since=${snap.revision}`);
    await busy;
    await writes(60, 90);
    const end = await a.store.revision();
    await s.waitFor((l) => {
      const rev = (JSON.parse(l) as { revision?: number }).revision ?? 0;
      return !l.includes('"hello"') && rev >= end;
    });
    s.close();

    const lines = s.json();
    expect(lines[0]!.kind).toBe('hello');
    const evs = lines.slice(1).filter((e) => e.kind !== 'ping');
    expect(evs.some((e) => e.kind === 'resync')).toBe(false);
    expect(evs.every((e) => (e.revision as number) > snap.revision)).toBe(true);
    const keys = evs.map(
      (e) => `${String(e.revision)} ${String(e.kind)} ${String(e.name)} ${String(e.machineID)}`,
    );
    expect(new Set(keys).size).toBe(keys.length);
    // Some lines were replayed (before the stream began) and some came live.
    const hello = lines[0]!.revision as number;
    expect(evs.some((e) => (e.revision as number) <= hello)).toBe(true);
    expect(evs.some((e) => (e.revision as number) > hello)).toBe(true);

    // Apply them to the snapshot as the dashboard does.
    const desired = new Map(snap.units.map((u) => [u.name as string, u.desiredState]));
    const states = new Map(
      snap.states.map((x) => [`${String(x.name)}/${String(x.machineID)}`, x.systemdSubState]),
    );
    for (const e of evs) {
      if (e.kind === 'unit') {
        if (e.action === 'delete') desired.delete(e.name as string);
        else desired.set(e.name as string, e.desiredState);
      }
      if (e.kind === 'state') {
        const k = `${String(e.name)}/${String(e.machineID)}`;
        if (e.action === 'delete') states.delete(k);
        else states.set(k, e.systemdSubState);
      }
    }
    await until('the view caught up', () => a.view.revision >= end);
    const now = (await call(t, 'GET', '/flotilla/v1/snapshot')).json as Snap;
    expect(desired).toEqual(new Map(now.units.map((u) => [u.name as string, u.desiredState])));
    expect(states).toEqual(
      new Map(now.states.map((x) => [`${String(x.name)}/${String(x.machineID)}`, x.systemdSubState])),
    );
  });

  it('says resync when the lines after R are no longer all held, or R is ahead; a bad R is a 400', async () => {
    const small = await startAgent({ store: a.store, replayLines: 3 });
    try {
      const from = small.view.revision;
      for (let i = 0; i < 5; i++)
        await a.registry.setDesiredState('snap-000.service', i % 2 ? 'loaded' : 'launched');
      await until('the view caught up', async () => small.view.revision === (await a.store.revision()));
      for (const since of [from, small.view.revision + 1000]) {
        const s = new Stream(small.target, `/flotilla/v1/events?since=${since}`);
        const r = await s.waitFor((l) => l.includes('"resync"'));
        expect(r.index).toBe(1); // right after hello: nothing replayed
        s.close();
      }
      // The last 3 lines are still there.
      const s = new Stream(small.target, `/flotilla/v1/events?since=${small.view.revision - 3}`);
      await s.waitFor((l) => l.includes(`"revision":${small.view.revision}`));
      expect(
        s
          .json()
          .slice(1, 4)
          .map((e) => e.kind),
      ).toEqual(['unit', 'unit', 'unit']);
      s.close();
      for (const bad of ['x', '-1', '1.5', '1&since=2']) {
        const r = await call(small.target, 'GET', `/flotilla/v1/events?since=${bad}`);
        expect(r.status, bad).toBe(400);
        expect(r.text).toContain('since');
      }
    } finally {
      await small.close();
    }
  });
});
