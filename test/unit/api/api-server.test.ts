/**
 * The agent's API through the real ApiServer on a temp unix socket, over a real embedded registry
 * and a real ClusterView: fleet v1's status matrix and Content-Type rules, pagination, the metadata
 * PATCH, discovery, the events stream, /metrics, the status/journal endpoints (errors, local
 * execution, forwarding over real mutual TLS to another agent and cleanup on disconnect), and the
 * TCP listener's client-certificate requirement.
 *
 * systemctl/journalctl are replaced by fake-cmd.mjs here (argv, exit code, streaming, kill): the
 * real commands run on the test machines in test/integration/api-remote-journal.test.ts.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterGauges } from '../../../src/api/gauges.js';
import { encodePageToken } from '../../../src/api/fleet-v1.js';
import { FORWARDED_HEADER } from '../../../src/api/unit-logs.js';
import { setGaugeSource } from '../../../src/lib/metrics.js';
import { sha1 } from '../../../src/registry/registry.js';
import type { MachineRecord } from '../../../src/registry/types.js';
import { UnitFile } from '../../../src/unit/index.js';
import { makePki, type Pki } from '../../support/certs.js';
import { Stream, alive, call, startAgent, until, type Agent, type Target } from './harness.js';

const FAKE = fileURLToPath(new URL('./fake-cmd.mjs', import.meta.url));
const fake = [process.execPath, FAKE];

const opts = [
  { section: 'Unit', name: 'Description', value: 'api test' },
  { section: 'Service', name: 'ExecStart', value: '/bin/sleep 1000' },
];
const errorOf = (r: { json: unknown }) => (r.json as { error: { code: number; message: string } }).error;

let a: Agent;
let t: Target;
let lease: string;

beforeAll(async () => {
  a = await startAgent({ logs: { systemctl: fake, journalctl: fake }, pingMs: 300 });
  t = a.target;
  lease = (await a.store.grantLease(600)).id;
});
afterAll(async () => {
  setGaugeSource(undefined);
  await a?.close();
});

/** A machine record (with a lease), and optionally a unit placed on it and reported running. */
async function machine(id: string, extra: Partial<MachineRecord> = {}): Promise<void> {
  await a.registry.registerMachine(
    { id, publicIP: '127.0.0.1', metadata: {}, version: 'test', ...extra },
    lease,
  );
}
async function placeUnit(name: string, on: string | undefined, body = opts, running = true): Promise<void> {
  const text = UnitFile.fromOptions(body).serialize();
  await a.registry.createUnit(name, text, 'launched');
  if (!on) return;
  const guard = await a.registry.acquireLeadership('engine-test', lease);
  expect(await a.registry.writeSchedule(guard!, [{ name, machineID: on }])).toBe(true);
  if (running) {
    await a.registry.reportUnitState(
      {
        name,
        machineID: on,
        hash: sha1(text),
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        jobState: 'launched',
      },
      lease,
    );
  }
}

describe('transport', () => {
  it('the unix socket is mode 0600 (root only)', () => {
    expect(statSync(a.socketPath).mode & 0o777).toBe(0o600);
  });

  it('every response names the server; JSON bodies are application/json', async () => {
    const r = await call(t, 'GET', '/fleet/v1/units');
    expect(r.status).toBe(200);
    expect(r.headers.server).toMatch(/^flotilla\//);
    expect(r.headers['content-type']).toBe('application/json');
  });
});

describe('fleet v1 status matrix over the socket', () => {
  it('201 create and 204 set-state carry no body and no Content-Type; 200 GET; 204 DELETE', async () => {
    const c = await call(t, 'PUT', '/fleet/v1/units/m1.service', { desiredState: 'inactive', options: opts });
    expect([c.status, c.text, c.headers['content-type']]).toEqual([201, '', undefined]);
    const s = await call(t, 'PUT', '/fleet/v1/units/m1.service', { desiredState: 'loaded' });
    expect([s.status, s.text, s.headers['content-type']]).toEqual([204, '', undefined]);
    const g = await call(t, 'GET', '/fleet/v1/units/m1.service');
    expect(g.status).toBe(200);
    expect(g.json).toMatchObject({
      name: 'm1.service',
      desiredState: 'loaded',
      currentState: 'inactive',
      options: opts,
    });
    // the alias
    expect((await call(t, 'GET', '/v1-alpha/units/m1.service')).json).toEqual(g.json);
    const d = await call(t, 'DELETE', '/fleet/v1/units/m1.service');
    expect([d.status, d.text]).toEqual([204, '']);
  });

  it.each([
    [
      'PUT bogus desiredState',
      'PUT',
      '/fleet/v1/units/x.service',
      { desiredState: 'bogus', options: opts },
      {},
      400,
      'invalid desiredState "bogus"',
    ],
    ['PUT undecodable body', 'PUT', '/fleet/v1/units/x.service', '{nope', {}, 400, 'unable to decode body'],
    [
      'PUT text/plain',
      'PUT',
      '/fleet/v1/units/x.service',
      JSON.stringify({ options: opts }),
      { 'Content-Type': 'text/plain' },
      415,
      'only acceptable Content-Type is application/json',
    ],
    ['GET missing unit', 'GET', '/fleet/v1/units/x.service', undefined, {}, 404, 'unit does not exist'],
    [
      'GET missing state',
      'GET',
      '/fleet/v1/state/x.service',
      undefined,
      {},
      404,
      'unit state does not exist',
    ],
    [
      'PUT a new unit without options',
      'PUT',
      '/fleet/v1/units/x.service',
      { desiredState: 'launched' },
      {},
      409,
      'unit does not exist and options field empty',
    ],
    [
      'POST on units',
      'POST',
      '/fleet/v1/units',
      { options: opts },
      {},
      405,
      'only GET supported against this resource',
    ],
    [
      'PATCH on a unit',
      'PATCH',
      '/fleet/v1/units/x.service',
      {},
      {},
      405,
      'only GET, PUT and DELETE supported against this resource',
    ],
    [
      'DELETE on machines',
      'DELETE',
      '/fleet/v1/machines',
      undefined,
      {},
      405,
      'only GET and PATCH supported against this resource',
    ],
    ['POST on state', 'POST', '/fleet/v1/state', {}, {}, 405, 'only GET supported'],
    ['/fleet/v1 itself', 'GET', '/fleet/v1', undefined, {}, 405, 'only GET supported'],
    ['unknown path', 'GET', '/fleet/v1/nope', undefined, {}, 404, 'not found'],
    [
      'bad page token',
      'GET',
      '/fleet/v1/machines?nextPageToken=xx',
      undefined,
      {},
      400,
      'invalid page token',
    ],
    [
      'two page tokens',
      'GET',
      `/fleet/v1/state?nextPageToken=${encodePageToken(100, 2)}&nextPageToken=${encodePageToken(100, 2)}`,
      undefined,
      {},
      400,
      'too many values for page token',
    ],
    [
      'POST discovery (fleet: 400)',
      'POST',
      '/fleet/v1/discovery',
      {},
      {},
      400,
      'only HTTP GET supported against this resource',
    ],
    [
      'bad percent-encoding',
      'GET',
      '/fleet/v1/units/%E0%A4%A.service',
      undefined,
      {},
      400,
      'invalid percent-encoding',
    ],
  ])('%s', async (_, method, path, body, headers, status, message) => {
    const r = await call(t, method, path, body, headers);
    expect(r.status).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    expect(errorOf(r)).toEqual({ code: status, message: expect.stringContaining(message) as unknown });
    if (status === 405) expect(r.headers.allow).toMatch(/^GET/);
  });

  it('a second PUT of changed options is 201 (replace), of the same options with a state 204', async () => {
    expect((await call(t, 'PUT', '/fleet/v1/units/r.service', { options: opts })).status).toBe(201);
    const changed = [...opts, { section: 'Service', name: 'Restart', value: 'always' }];
    expect((await call(t, 'PUT', '/fleet/v1/units/r.service', { options: changed })).status).toBe(201);
    expect(
      (await call(t, 'PUT', '/fleet/v1/units/r.service', { options: changed, desiredState: 'loaded' }))
        .status,
    ).toBe(204);
    expect((await call(t, 'PUT', '/fleet/v1/units/r.service', {})).status).toBe(409);
    expect((await call(t, 'DELETE', '/fleet/v1/units/r.service')).status).toBe(204);
    expect((await call(t, 'DELETE', '/fleet/v1/units/r.service')).status).toBe(404);
  });

  it('serves the discovery document', async () => {
    const r = await call(t, 'GET', '/fleet/v1/discovery');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json).toMatchObject({
      kind: 'discovery#restDescription',
      id: 'fleet:v1',
      rootUrl: '$ENDPOINT/',
      servicePath: 'fleet/v1/',
      resources: { Units: { methods: { Set: { httpMethod: 'PUT', path: 'units/{unitName}' } } } },
    });
  });
});

describe('pagination', () => {
  it('pages machines and states by 100 with fleet tokens; an empty page is {}', async () => {
    const ids = Array.from({ length: 101 }, (_, i) => `p${String(i).padStart(3, '0')}`.padEnd(32, '0'));
    for (const id of ids) await machine(id, { publicIP: `10.9.0.${ids.indexOf(id) % 250}` });
    const p1 = (await call(t, 'GET', '/fleet/v1/machines')).json as {
      machines: { id: string }[];
      nextPageToken: string;
    };
    expect(p1.machines).toHaveLength(100);
    expect(p1.nextPageToken).toBe('ZAACAA==');
    const p2 = (await call(t, 'GET', `/fleet/v1/machines?nextPageToken=${p1.nextPageToken}`)).json as {
      machines: { id: string }[];
      nextPageToken?: string;
    };
    const seen = [...p1.machines, ...p2.machines].map((m) => m.id).filter((id) => ids.includes(id));
    expect(seen).toEqual(ids); // sorted by id, each once
    expect(p2.nextPageToken).toBeUndefined();
    const empty = await call(t, 'GET', `/fleet/v1/machines?nextPageToken=${encodePageToken(100, 9)}`);
    expect([empty.status, empty.json]).toEqual([200, {}]);
    // states: 100 records of one unit on 100 machines fill exactly one page (+ token), page 2 is {}
    const text = UnitFile.fromOptions(opts).serialize();
    await a.registry.createUnit('paged.service', text, 'launched');
    for (const id of ids.slice(0, 100)) {
      await a.registry.reportUnitState(
        {
          name: 'paged.service',
          machineID: id,
          hash: sha1(text),
          loadState: 'loaded',
          activeState: 'active',
          subState: 'running',
        },
        lease,
      );
    }
    const s1 = (await call(t, 'GET', '/fleet/v1/state?unitName=paged.service')).json as {
      states: { machineID: string; systemdActiveState: string }[];
      nextPageToken: string;
    };
    expect(s1.states).toHaveLength(100);
    expect(s1.states[0]).toMatchObject({ machineID: ids[0], systemdActiveState: 'active' });
    expect(s1.nextPageToken).toBe(encodePageToken(100, 2));
    const s2 = await call(
      t,
      'GET',
      `/fleet/v1/state?unitName=paged.service&nextPageToken=${s1.nextPageToken}`,
    );
    expect(s2.json).toEqual({});
    const one = await call(t, 'GET', `/fleet/v1/state?unitName=paged.service&machineID=${ids[5]}`);
    expect((one.json as { states: unknown[] }).states).toHaveLength(1);
    expect(await a.registry.destroyUnit('paged.service')).toBe(true);
  });
});

describe('PATCH /fleet/v1/machines (metadata)', () => {
  const M = 'f'.repeat(32);
  const patch = (body: unknown) => call(t, 'PATCH', '/fleet/v1/machines', body);
  const meta = async (id: string) =>
    (
      (await call(t, 'GET', '/fleet/v1/machines')).json as {
        machines: { id: string; metadata: Record<string, string> }[];
      }
    ).machines.find((m) => m.id === id)?.metadata;

  beforeAll(async () => {
    await machine(M, { metadata: { region: 'eu', disk: 'ssd' } });
  });

  it('add, replace and remove apply in order and merge over the configured metadata; 204 application/json', async () => {
    const r = await patch([
      { op: 'add', path: `/${M}/metadata/role`, value: { value: 'web' } },
      { op: 'replace', path: `/${M}/metadata/region`, value: { value: 'us' } },
      { op: 'remove', path: `/${M}/metadata/disk` },
      { op: 'add', path: `/${M}/metadata/tier`, value: 'one' }, // the bare string fleet's docs show
      { op: 'replace', path: `/${M}/metadata/tier`, value: { value: 'two' } },
    ]);
    expect([r.status, r.text, r.headers['content-type']]).toEqual([204, '', 'application/json']);
    expect(await meta(M)).toEqual({ region: 'us', role: 'web', tier: 'two' });
    // remove of an added key; add back a removed configured key
    await patch([
      { op: 'remove', path: `/${M}/metadata/role` },
      { op: 'add', path: `/${M}/metadata/disk`, value: { value: 'hdd' } },
    ]);
    expect(await meta(M)).toEqual({ region: 'us', disk: 'hdd', tier: 'two' });
  });

  it('an unknown machine ID is accepted (applies when it joins); null and [] are no-ops', async () => {
    expect(
      (await patch([{ op: 'add', path: '/nosuchmachine/metadata/k', value: { value: 'v' } }])).status,
    ).toBe(204);
    expect((await patch([])).status).toBe(204);
    expect((await patch('null')).status).toBe(204);
    await machine('nosuchmachine', { metadata: { a: 'b' } });
    expect(await meta('nosuchmachine')).toEqual({ a: 'b', k: 'v' });
  });

  it.each([
    [
      'bad op',
      [{ op: 'move', path: `/${M}/metadata/x`, value: { value: 'v' } }],
      'invalid op: expect add, remove, or replace',
    ],
    [
      'bad path',
      [{ op: 'add', path: `/${M}/meta/x`, value: { value: 'v' } }],
      'machine metadata path invalid',
    ],
    [
      'bad key',
      [{ op: 'add', path: `/${M}/metadata/a b`, value: { value: 'v' } }],
      'machine metadata path invalid',
    ],
    ['no value', [{ op: 'add', path: `/${M}/metadata/x` }], 'invalid value: add and replace require a value'],
    [
      'empty value',
      [{ op: 'replace', path: `/${M}/metadata/x`, value: { value: '' } }],
      'invalid value: add and replace require a value',
    ],
    ['not an array', { op: 'add' }, 'unable to decode body'],
    ['value of the wrong type', [{ op: 'add', path: `/${M}/metadata/x`, value: 3 }], 'unable to decode body'],
    ['not JSON', '[{', 'unable to decode body'],
  ])('400 for %s, and nothing is applied', async (_, body, message) => {
    const before = await meta(M);
    // a valid op first: validation happens before anything is applied
    const ops = Array.isArray(body)
      ? [{ op: 'add', path: `/${M}/metadata/early`, value: { value: 'x' } }, ...body]
      : body;
    const r = await patch(ops);
    expect(r.status).toBe(400);
    expect(errorOf(r).message).toContain(message);
    expect(await meta(M)).toEqual(before);
  });
});

describe('GET /flotilla/v1/events', () => {
  it('streams hello, then unit, schedule, state, machine and metadata changes as NDJSON; ping on silence', async () => {
    const s = new Stream(t, '/flotilla/v1/events');
    await s.ready;
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('application/x-ndjson');
    const hello = JSON.parse((await s.waitFor((l) => l.includes('"hello"'))).line) as { revision: number };
    expect(hello.revision).toBeGreaterThan(0);
    await call(t, 'PUT', '/fleet/v1/units/ev.service', { desiredState: 'loaded', options: opts });
    await s.waitFor((l) => l.includes('"kind":"unit"') && l.includes('ev.service'));
    await placeUnit('ev2.service', 'b'.repeat(32));
    await s.waitFor((l) => l.includes('"kind":"schedule"') && l.includes('ev2.service'));
    await s.waitFor((l) => l.includes('"kind":"state"') && l.includes('ev2.service'));
    await machine('e'.repeat(32), { metadata: { x: 'y' } });
    await s.waitFor((l) => l.includes('"kind":"machine"') && l.includes('e'.repeat(32)));
    await call(t, 'PATCH', '/fleet/v1/machines', [
      { op: 'add', path: `/${'e'.repeat(32)}/metadata/k`, value: { value: 'v' } },
    ]);
    await s.waitFor((l) => l.includes('"kind":"metadata"'));
    await call(t, 'DELETE', '/fleet/v1/units/ev.service');
    await s.waitFor(
      (l) => l.includes('"action":"delete"') && l.includes('"kind":"unit"') && l.includes('ev.service'),
    );
    await s.waitFor((l) => l.includes('"kind":"ping"'), 3000);
    const ev = s.json();
    const unitPut = ev.find((e) => e.kind === 'unit' && e.name === 'ev.service' && e.action === 'put');
    expect(unitPut).toMatchObject({ desiredState: 'loaded', hash: expect.any(String) as unknown });
    expect(ev.find((e) => e.kind === 'state' && e.name === 'ev2.service')).toMatchObject({
      action: 'put',
      machineID: 'b'.repeat(32),
      systemdActiveState: 'active',
      systemdSubState: 'running',
      currentState: 'launched',
    });
    expect(ev.find((e) => e.kind === 'metadata')).toMatchObject({
      machineID: 'e'.repeat(32),
      key: 'k',
      value: 'v',
    });
    const revs = ev.filter((e) => e.kind !== 'hello' && e.kind !== 'ping').map((e) => e.revision as number);
    expect(revs.every((r) => r > hello.revision)).toBe(true);
    expect([...revs].sort((x, y) => x - y)).toEqual(revs);
    s.close();
    await a.registry.destroyUnit('ev2.service');
  });

  it('ends the stream of a client that falls behind, with an overflow line', async () => {
    const small = await startAgent({ store: a.store, maxBacklog: 5 });
    try {
      const base = small.view.listenerCount('batch'); // the agent's own replay ring
      const s = new Stream(small.target, '/flotilla/v1/events');
      await s.waitFor((l) => l.includes('"hello"'));
      // One txn of 20 puts is one watch batch: 20 lines queued at once, more than the backlog allows.
      const ops = Array.from({ length: 20 }, (_, i) => ({
        op: 'add',
        path: `/overflow/metadata/k${i}`,
        value: { value: 'v' },
      }));
      expect((await call(t, 'PATCH', '/fleet/v1/machines', ops)).status).toBe(204);
      await s.waitFor((l) => l.includes('"kind":"overflow"'));
      await until('the stream to end', () => s.ended);
      // the backlog (5) plus at most the one line the writer had already taken
      const got = s.json().filter((e) => e.kind === 'metadata').length;
      expect(got).toBeGreaterThanOrEqual(5);
      expect(got).toBeLessThanOrEqual(6);
      expect(small.view.listenerCount('batch')).toBe(base);
    } finally {
      await small.close();
    }
  });

  it('removes its listeners when the client disconnects', async () => {
    const before = a.view.listenerCount('batch');
    const s = new Stream(t, '/flotilla/v1/events');
    await s.waitFor((l) => l.includes('"hello"'));
    expect(a.view.listenerCount('batch')).toBe(before + 1);
    s.close();
    await until('the listener removed', () => a.view.listenerCount('batch') === before);
  });
});

describe('GET /metrics', () => {
  it('serves flotilla_* Prometheus text whose values follow the cluster', async () => {
    setGaugeSource(() =>
      clusterGauges({
        view: a.view,
        machineID: 'b'.repeat(32),
        lease: { id: lease, lastRenewed: Date.now(), ttl: 600 },
      }),
    );
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const m1 = await call(t, 'GET', '/metrics');
    expect(m1.status).toBe(200);
    expect(m1.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'flotilla_agent_reconcile_duration_seconds',
      'flotilla_engine_scheduling_decisions_total',
      'flotilla_units',
      'flotilla_units_desired',
      'flotilla_machine_units',
      'flotilla_registry_request_duration_seconds',
      'flotilla_lease_held',
      'flotilla_api_requests_total',
    ]) {
      expect(m1.text).toContain(`# TYPE ${name} `);
    }
    expect(value(m1.text, 'flotilla_lease_held')).toBe(1);
    const launched0 = value(m1.text, 'flotilla_units{state="launched"}') ?? 0;
    const desired0 = value(m1.text, 'flotilla_units_desired{state="launched"}') ?? 0;
    const gets0 = value(m1.text, 'flotilla_api_requests_total{method="GET",code="200"}') ?? 0;
    await placeUnit('metric.service', 'b'.repeat(32));
    await until('the view to see the unit', () => a.view.snap?.states.has('metric.service') === true);
    const m2 = (await call(t, 'GET', '/metrics')).text;
    expect(value(m2, 'flotilla_units{state="launched"}')).toBe(launched0 + 1);
    expect(value(m2, 'flotilla_units_desired{state="launched"}')).toBe(desired0 + 1);
    expect(value(m2, 'flotilla_machine_units{active_state="active"}')).toBeGreaterThanOrEqual(1);
    expect(value(m2, 'flotilla_api_requests_total{method="GET",code="200"}')).toBeGreaterThan(gets0);
    await a.registry.destroyUnit('metric.service');
  });
});

describe('unit status and journal', () => {
  const ME = 'a'.repeat(32);
  const PEER = 'c'.repeat(32);

  beforeAll(async () => {
    await placeUnit('here.service', ME);
    await placeUnit('peer.service', PEER);
    await placeUnit('sched-only.service', ME, opts, false);
    await placeUnit('nowhere.service', undefined);
    await placeUnit('glob.service', undefined, [
      ...opts,
      { section: 'X-Fleet', name: 'Global', value: 'true' },
    ]);
  });

  it.each([
    [
      'status of a missing unit',
      '/flotilla/v1/units/none.service/status',
      404,
      'Unit none.service does not exist.',
    ],
    [
      'journal of a missing unit',
      '/flotilla/v1/units/none.service/journal',
      404,
      'Unit none.service does not exist.',
    ],
    [
      'status of an unplaced unit',
      '/flotilla/v1/units/nowhere.service/status',
      409,
      'Unit nowhere.service does not appear to be loaded.',
    ],
    [
      'status of a unit without a reported state',
      '/flotilla/v1/units/sched-only.service/status',
      409,
      'does not appear to be loaded.',
    ],
    [
      'journal of an unplaced unit',
      '/flotilla/v1/units/nowhere.service/journal',
      409,
      'Unit nowhere.service does not appear to be running.',
    ],
    [
      'status of a global unit',
      '/flotilla/v1/units/glob.service/status',
      409,
      'Unit glob.service is global: status is per machine',
    ],
    [
      'journal of a global unit',
      '/flotilla/v1/units/glob.service/journal',
      409,
      'Unable to retrieve journal of global unit glob.service.',
    ],
    [
      'a bad output mode',
      '/flotilla/v1/units/here.service/journal?output=html',
      400,
      'invalid output "html"',
    ],
    ['bad lines', '/flotilla/v1/units/here.service/journal?lines=-1', 400, 'invalid lines "-1"'],
    ['bad follow', '/flotilla/v1/units/here.service/journal?follow=maybe', 400, 'invalid follow "maybe"'],
    ['a bad unit name', '/flotilla/v1/units/nodot/status', 400, 'unit name must contain "."'],
    ['an unknown extension path', '/flotilla/v1/nope', 404, 'not found'],
  ])('%s (%s) → %i', async (_, path, status, message) => {
    const r = await call(t, 'GET', path);
    expect(r.status).toBe(status);
    expect(errorOf(r)).toEqual({ code: status, message: expect.stringContaining(message) as unknown });
  });

  it('405 for other methods', async () => {
    const r = await call(t, 'POST', '/flotilla/v1/units/here.service/status', {});
    expect([r.status, r.headers.allow]).toEqual([405, 'GET']);
  });

  it('status runs `systemctl status -l --no-pager --lines=N -- NAME` here and reports its exit code', async () => {
    process.env.FAKE_EXIT = '3';
    try {
      const r = await call(t, 'GET', '/flotilla/v1/units/here.service/status?lines=4');
      expect(r.status).toBe(200);
      const body = r.json as { name: string; machineID: string; exitCode: number; output: string };
      expect(body).toMatchObject({ name: 'here.service', machineID: ME, exitCode: 3 });
      expect(body.output).toContain(
        `ARGS ${JSON.stringify(['status', '-l', '--no-pager', '--lines=4', '--', 'here.service'])}`,
      );
      expect(body.output).toContain('line 4');
      expect(body.output).toContain('ERR from stderr');
    } finally {
      delete process.env.FAKE_EXIT;
    }
  });

  it('journal streams `journalctl --unit=NAME --no-pager --lines=N --output=MODE` as text/plain', async () => {
    const r = await call(t, 'GET', '/flotilla/v1/units/here.service/journal?lines=3&output=cat');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.text).toContain(
      `ARGS ${JSON.stringify(['--unit=here.service', '--no-pager', '--lines=3', '--output=cat'])}`,
    );
    expect(r.text).toContain('line 3');
  });

  it('journal follow=true keeps streaming until the client goes away, then journalctl is killed', async () => {
    const s = new Stream(t, '/flotilla/v1/units/here.service/journal?follow=true&lines=0');
    await s.waitFor((l) => l.startsWith('tick 3'));
    expect(s.lines[0]!.line).toContain('"--follow"');
    const pid = Number((await s.waitFor((l) => l.startsWith('PID '))).line.slice(4));
    expect(alive(pid)).toBe(true);
    s.close();
    await until(`journalctl stand-in ${pid} killed`, () => !alive(pid), 4000);
  });

  it('a unit on a machine without a peer address, or with no TLS here, is a 502 naming the machine', async () => {
    await machine(PEER, { publicIP: '10.9.9.9' });
    const r = await call(t, 'GET', '/flotilla/v1/units/peer.service/status');
    expect(r.status).toBe(502);
    expect(errorOf(r).message).toBe(
      `machine ${PEER} (10.9.9.9) is unreachable: it publishes no peer API address (api_listen is not set there)`,
    );
    await a.registry.registerMachine(
      { id: PEER, publicIP: '10.9.9.9', metadata: {}, version: 'test', api: '127.0.0.1:9' },
      lease,
    );
    const n = await call(t, 'GET', '/flotilla/v1/units/peer.service/journal');
    expect(n.status).toBe(502);
    expect(errorOf(n).message).toMatch(
      /is unreachable: this agent has no TLS identity for peers .*never forwarded in plaintext/,
    );
  });

  it('X-Flotilla-Forwarded on the unix socket is ignored: the unit is located as usual', async () => {
    const r = await call(t, 'GET', '/flotilla/v1/units/peer.service/status', undefined, {
      [FORWARDED_HEADER]: 'x',
    });
    expect(r.status).toBe(502);
    expect(errorOf(r).message).toMatch(new RegExp(`^machine ${PEER} `));
  });
});

describe('forwarding to the hosting agent over mutual TLS', () => {
  let pki: Pki;
  let b: Agent; // hosts the unit; TCP listener with mTLS
  let c: Agent; // receives the request on its unix socket; forwards with its client certificate
  const B = 'b1'.padEnd(32, '0');
  const C = 'c1'.padEnd(32, '0');

  beforeAll(async () => {
    pki = makePki();
    b = await startAgent({
      machineID: B,
      store: a.store,
      logs: { systemctl: fake, journalctl: fake },
      tcp: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
    });
    c = await startAgent({
      machineID: C,
      store: a.store,
      logs: {
        systemctl: fake,
        journalctl: fake,
        peerTls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
      },
    });
    await a.registry.registerMachine(
      { id: B, publicIP: '127.0.0.1', metadata: {}, version: 'test', api: `127.0.0.1:${b.server.tcpPort()}` },
      lease,
    );
    await placeUnit('fwd.service', B);
  }, 30_000);
  afterAll(async () => {
    await c?.close();
    await b?.close();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('status comes from the hosting agent', async () => {
    const r = await call(c.target, 'GET', '/flotilla/v1/units/fwd.service/status?lines=2');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ name: 'fwd.service', machineID: B, exitCode: 0 });
  });

  it('journal -f is relayed as it comes, and the host kills journalctl when the client leaves', async () => {
    const s = new Stream(c.target, '/flotilla/v1/units/fwd.service/journal?follow=true');
    await s.ready;
    expect([s.status, s.headers['content-type']]).toEqual([200, 'text/plain; charset=utf-8']);
    const pid = Number((await s.waitFor((l) => l.startsWith('PID '))).line.slice(4));
    const t1 = await s.waitFor((l) => l.startsWith('tick 1'));
    const t2 = await s.waitFor((l) => l.startsWith('tick 2'));
    // produced 100 ms apart on the host, they arrive apart too: streamed, not buffered
    expect(t2.at - t1.at).toBeGreaterThan(30);
    s.close();
    await until(`the host's journalctl stand-in ${pid} killed`, () => !alive(pid), 4000);
  });

  it('the peer being down is a 502 naming the machine and its address', async () => {
    await a.registry.registerMachine(
      { id: B, publicIP: '127.0.0.1', metadata: {}, version: 'test', api: '127.0.0.1:1' },
      lease,
    );
    try {
      const r = await call(c.target, 'GET', '/flotilla/v1/units/fwd.service/status');
      expect(r.status).toBe(502);
      expect(errorOf(r).message).toMatch(
        new RegExp(`^machine ${B} \\(127\\.0\\.0\\.1\\) is unreachable: .*ECONNREFUSED`),
      );
    } finally {
      await a.registry.registerMachine(
        {
          id: B,
          publicIP: '127.0.0.1',
          metadata: {},
          version: 'test',
          api: `127.0.0.1:${b.server.tcpPort()}`,
        },
        lease,
      );
    }
  });

  const over = (cert: string, key: string): Target => ({
    tls: {
      host: '127.0.0.1',
      port: b.server.tcpPort()!,
      ca: readFileSync(pki.ca),
      cert: readFileSync(cert),
      key: readFileSync(key),
    },
  });

  it('an agent-role certificate may forward: the request runs on the receiving agent', async () => {
    await placeUnit('elsewhere.service', C);
    const r = await call(
      over(pki.serverCert, pki.serverKey),
      'GET',
      '/flotilla/v1/units/elsewhere.service/status',
      undefined,
      { [FORWARDED_HEADER]: C },
    );
    expect(r.status).toBe(200);
    expect((r.json as { machineID: string }).machineID).toBe(B);
  });

  it('a forwarded status or journal of a unit not in the registry (a host unit) is refused', async () => {
    for (const what of ['status', 'journal']) {
      const r = await call(
        over(pki.serverCert, pki.serverKey),
        'GET',
        `/flotilla/v1/units/sshd.service/${what}`,
        undefined,
        { [FORWARDED_HEADER]: C },
      );
      expect(r.status).toBe(404);
      expect(errorOf(r).message).toBe('Unit sshd.service does not exist.');
    }
  });

  it('X-Flotilla-Forwarded from an operator or viewer certificate is ignored (no registry bypass)', async () => {
    for (const [cert, key] of [
      [pki.clientCert, pki.clientKey],
      [pki.viewerCert, pki.viewerKey],
    ] as const) {
      const r = await call(over(cert, key), 'GET', '/flotilla/v1/units/sshd.service/status', undefined, {
        [FORWARDED_HEADER]: C,
      });
      expect(r.status).toBe(404);
      // Located through the registry: a unit scheduled elsewhere is not run here either.
      const e = await call(over(cert, key), 'GET', '/flotilla/v1/units/elsewhere.service/status', undefined, {
        [FORWARDED_HEADER]: C,
      });
      expect(e.status).toBe(502);
    }
  });

  it('roles: viewer and agent may read but not change; operator may change; no role is refused', async () => {
    const unit = { desiredState: 'inactive', options: opts };
    const put = (tgt: Target) => call(tgt, 'PUT', '/fleet/v1/units/role-test.service', unit);
    for (const [cert, key] of [
      [pki.viewerCert, pki.viewerKey],
      [pki.serverCert, pki.serverKey],
    ] as const) {
      expect((await call(over(cert, key), 'GET', '/fleet/v1/machines')).status).toBe(200);
      const r = await put(over(cert, key));
      expect(r.status).toBe(403);
      expect(errorOf(r).message).toMatch(/may only read \(GET\); PUT needs the operator role/);
    }
    expect((await put(over(pki.clientCert, pki.clientKey))).status).toBe(201);
    const none = await call(over(pki.noRoleCert, pki.noRoleKey), 'GET', '/fleet/v1/machines');
    expect(none.status).toBe(403);
    expect(errorOf(none).message).toMatch(/client certificate has no flotilla role/);
  });

  it('PUT of a unit that can never be scheduled (MachineOf=%n) answers 201 with a Warning header', async () => {
    const op = over(pki.clientCert, pki.clientKey);
    const name = 'self-peer.service';
    const r = await call(op, 'PUT', `/fleet/v1/units/${name}`, {
      desiredState: 'inactive',
      options: [...opts, { section: 'X-Fleet', name: 'MachineOf', value: '%n' }],
    });
    expect(r.status).toBe(201);
    expect(r.headers.warning).toBe(
      '199 flotilla "MachineOf names the unit itself (\\"self-peer.service\\", e.g. from %n): a unit cannot wait for itself, so it can never be scheduled"',
    );
    const plain = await call(op, 'PUT', '/fleet/v1/units/no-warning.service', {
      desiredState: 'inactive',
      options: opts,
    });
    expect(plain.status).toBe(201);
    expect(plain.headers.warning).toBeUndefined();
    for (const u of [name, 'no-warning.service']) await call(op, 'DELETE', `/fleet/v1/units/${u}`);
  });

  it('Environment= values are redacted for viewer and agent (GET of one unit and the list), shown to the operator', async () => {
    const secretOpts = [
      { section: 'Unit', name: 'Description', value: 'secret test' },
      { section: 'Container', name: 'Image', value: 'busybox:1.36' },
      { section: 'Container', name: 'Environment', value: 'DB_PASSWORD=hunter2 "API_TOKEN=tok en"' },
      { section: 'Service', name: 'Environment', value: 'SVC_KEY=s3cr3t' },
    ];
    const name = 'redact-test.service';
    const op = over(pki.clientCert, pki.clientKey);
    expect(
      (await call(op, 'PUT', `/fleet/v1/units/${name}`, { desiredState: 'inactive', options: secretOpts }))
        .status,
    ).toBe(201);
    type U = { name: string; options: { section: string; name: string; value: string }[] };
    const envOf = (u: U) =>
      u.options.filter((o) => o.name === 'Environment').map((o) => `${o.section}:${o.value}`);
    for (const [cert, key] of [
      [pki.viewerCert, pki.viewerKey],
      [pki.serverCert, pki.serverKey],
    ] as const) {
      const one = await call(over(cert, key), 'GET', `/fleet/v1/units/${name}`);
      expect(one.status).toBe(200);
      expect(envOf(one.json as U)).toEqual([
        'Container:DB_PASSWORD=<redacted> API_TOKEN=<redacted>',
        'Service:SVC_KEY=<redacted>',
      ]);
      // Everything else as submitted.
      expect((one.json as U).options.find((o) => o.name === 'Image')?.value).toBe('busybox:1.36');
      const list = await call(over(cert, key), 'GET', '/fleet/v1/units');
      const mine = (list.json as { units: U[] }).units.find((u) => u.name === name)!;
      expect(envOf(mine)).toEqual(envOf(one.json as U));
      for (const r of [one, list])
        expect(JSON.stringify(r.json)).not.toMatch(/hunter2|tok en|s3cr3t|unterminated/);
    }
    const full = await call(op, 'GET', `/fleet/v1/units/${name}`);
    expect(envOf(full.json as U)).toEqual([
      'Container:DB_PASSWORD=hunter2 "API_TOKEN=tok en"',
      'Service:SVC_KEY=s3cr3t',
    ]);
    // The unix socket acts as operator.
    expect(envOf((await call(t, 'GET', `/fleet/v1/units/${name}`)).json as U)).toEqual(envOf(full.json as U));
    expect((await call(op, 'DELETE', `/fleet/v1/units/${name}`)).status).toBe(204);
  });

  it('the TCP listener refuses clients without a certificate or with one from another CA', async () => {
    const port = b.server.tcpPort()!;
    const ca = readFileSync(pki.ca);
    const ok = await call(
      {
        tls: {
          host: '127.0.0.1',
          port,
          ca,
          cert: readFileSync(pki.clientCert),
          key: readFileSync(pki.clientKey),
        },
      },
      'GET',
      '/fleet/v1/machines',
    );
    expect(ok.status).toBe(200);
    await expect(call({ tls: { host: '127.0.0.1', port, ca } }, 'GET', '/fleet/v1/machines')).rejects.toThrow(
      /certificate|alert|socket hang up|ECONNRESET/i,
    );
    await expect(
      call(
        {
          tls: {
            host: '127.0.0.1',
            port,
            ca,
            cert: readFileSync(pki.strangerCert),
            key: readFileSync(pki.strangerKey),
          },
        },
        'GET',
        '/fleet/v1/machines',
      ),
    ).rejects.toThrow(/certificate|alert|socket hang up|ECONNRESET/i);
  });
});
