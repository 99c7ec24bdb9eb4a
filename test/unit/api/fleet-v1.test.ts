/**
 * fleet v1 API through `dispatch` (no socket), over a real embedded registry in a temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetV1, encodePageToken } from '../../../src/api/fleet-v1.js';
import type { ApiResponse } from '../../../src/api/http.js';
import { dispatch } from '../../../src/api/server.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';

let dir: string;
let store: EmbeddedKvStore;
let api: FleetV1;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-api-'));
  store = await EmbeddedKvStore.open({ dataDir: dir });
  api = new FleetV1(new Registry(store));
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<ApiResponse> {
  const [p, q] = path.split('?');
  return dispatch([(r) => api.route(r)], {
    method,
    path: p!,
    query: new URLSearchParams(q ?? ''),
    headers: body === undefined ? {} : { 'content-type': contentType },
    body: Buffer.from(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body)),
  });
}

const opts = [
  { section: 'Unit', name: 'Description', value: 'hi' },
  { section: 'Service', name: 'ExecStart', value: '/bin/sleep 1000' },
];

describe('fleet v1 units', () => {
  it('creates (201), reads back in normal form, and lists', async () => {
    expect(
      (await call('PUT', '/fleet/v1/units/a.service', { desiredState: 'inactive', options: opts })).status,
    ).toBe(201);
    const r = await call('GET', '/fleet/v1/units/a.service');
    expect(r).toMatchObject({
      status: 200,
      body: { name: 'a.service', desiredState: 'inactive', currentState: 'inactive', options: opts },
    });
    const l = await call('GET', '/fleet/v1/units');
    expect((l.body as { units: { name: string }[] }).units.map((u) => u.name)).toContain('a.service');
  });

  it('sets the desired state only (204), and refuses a bogus one (400, unlike fleet)', async () => {
    expect((await call('PUT', '/fleet/v1/units/a.service', { desiredState: 'loaded' })).status).toBe(204);
    const bogus = await call('PUT', '/fleet/v1/units/a.service', { desiredState: 'bogus' });
    expect(bogus).toEqual({
      status: 400,
      body: {
        error: { code: 400, message: expect.stringMatching(/invalid desiredState "bogus"/) as unknown },
      },
    });
    expect((await call('GET', '/fleet/v1/units/a.service')).body).toMatchObject({ desiredState: 'loaded' });
  });

  it.each([
    [
      'no content type',
      () => call('PUT', '/fleet/v1/units/b.service', { options: opts }, 'text/plain'),
      415,
      'only acceptable Content-Type is application/json',
    ],
    [
      'bad JSON',
      () => call('PUT', '/fleet/v1/units/b.service', '{', 'application/json'),
      400,
      'unable to decode body',
    ],
    [
      'name mismatch',
      () => call('PUT', '/fleet/v1/units/b.service', { name: 'c.service', options: opts }),
      400,
      'differs from unit name',
    ],
    ['bad name', () => call('PUT', '/fleet/v1/units/b.bogus', { options: opts }), 400, 'invalid unit type'],
    [
      'new unit without options',
      () => call('PUT', '/fleet/v1/units/b.service', { desiredState: 'launched' }),
      409,
      'unit does not exist and options field empty',
    ],
    [
      'existing unit, nothing to set',
      () => call('PUT', '/fleet/v1/units/a.service', {}),
      409,
      'must provide DesiredState',
    ],
    [
      'a template cannot be activated',
      () => call('PUT', '/fleet/v1/units/t@.service', { desiredState: 'launched', options: opts }),
      400,
      'cannot activate template "t@.service"',
    ],
    [
      'forbidden [X-Fleet] combination',
      () =>
        call('PUT', '/fleet/v1/units/b.service', {
          options: [
            ...opts,
            { section: 'X-Fleet', name: 'MachineID', value: 'x' },
            { section: 'X-Fleet', name: 'Global', value: 'true' },
          ],
        }),
      400,
      'MachineID cannot be used with Global',
    ],
    [
      'an option that cannot round-trip',
      () =>
        call('PUT', '/fleet/v1/units/b.service', {
          options: [{ section: 'Service', name: 'ExecStart', value: 'a\nb' }],
        }),
      400,
      'newline',
    ],
    ['missing unit', () => call('GET', '/fleet/v1/units/nope.service'), 404, 'unit does not exist'],
    ['delete missing unit', () => call('DELETE', '/fleet/v1/units/nope.service'), 404, 'unit does not exist'],
    ['wrong method', () => call('POST', '/fleet/v1/units'), 405, 'only GET supported'],
    ['root', () => call('GET', '/'), 405, 'only GET supported'],
    ['unknown path', () => call('GET', '/fleet/v1/bogus'), 404, 'not found'],
  ])('%s → %i', async (_, fn, status, message) => {
    const r = await fn();
    expect(r.status).toBe(status);
    expect((r.body as { error: { code: number; message: string } }).error).toEqual({
      code: status,
      message: expect.stringContaining(message) as unknown,
    });
    // Nothing was written for b.service.
    expect((await call('GET', '/fleet/v1/units/b.service')).status).toBe(404);
  });

  it('replaces a unit whose options changed (201) and deletes (204)', async () => {
    const changed = [...opts, { section: 'Service', name: 'Restart', value: 'always' }];
    expect((await call('PUT', '/fleet/v1/units/a.service', { options: changed })).status).toBe(201);
    expect((await call('GET', '/fleet/v1/units/a.service')).body).toMatchObject({
      desiredState: 'inactive',
      options: changed,
    });
    expect((await call('DELETE', '/fleet/v1/units/a.service')).status).toBe(204);
    expect((await call('GET', '/fleet/v1/units/a.service')).status).toBe(404);
  });

  it('pages by 100 with fleet tokens, sending a token after every full page', async () => {
    for (let i = 0; i < 100; i++) {
      await call('PUT', `/fleet/v1/units/p${String(i).padStart(3, '0')}.service`, { options: opts });
    }
    const p1 = (await call('GET', '/fleet/v1/units')).body as { units: unknown[]; nextPageToken?: string };
    expect(p1.units).toHaveLength(100);
    expect(p1.nextPageToken).toBe(encodePageToken(100, 2));
    expect(p1.nextPageToken).toBe('ZAACAA==');
    const p2 = await call('GET', `/fleet/v1/units?nextPageToken=${p1.nextPageToken}`);
    expect(p2.body).toEqual({}); // fleet (Go omitempty): an empty page is {}
    expect((await call('GET', `/fleet/v1/units?nextPageToken=${encodePageToken(50, 2)}`)).status).toBe(400);
    expect((await call('GET', `/fleet/v1/units?nextPageToken=${encodePageToken(100, 0)}`)).status).toBe(400);
  });

  it('answers 503 when the registry is gone', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-api-closed-'));
    const s = await EmbeddedKvStore.open({ dataDir: d });
    const closed = new FleetV1(new Registry(s));
    await s.close();
    const r = await dispatch([(req) => closed.route(req)], {
      method: 'GET',
      path: '/fleet/v1/units',
      query: new URLSearchParams(),
      headers: {},
      body: Buffer.alloc(0),
    });
    expect(r).toEqual({
      status: 503,
      body: { error: { code: 503, message: 'fleet server unable to communicate with etcd' } },
    });
    rmSync(d, { recursive: true, force: true });
  });
});

describe('container units at submit', () => {
  const container = [
    { section: 'Container', name: 'Image', value: 'docker.io/library/nginx:1.27' },
    { section: 'Container', name: 'User', value: '1000:1000' },
  ];
  it('[Service] User= with [Container] is refused at submit (400 naming User), not at start', async () => {
    const r = await call('PUT', '/fleet/v1/units/cuser.service', {
      desiredState: 'launched',
      options: [...container, { section: 'Service', name: 'User', value: 'nobody' }],
    });
    expect(r.status).toBe(400);
    expect((r.body as { error: { message: string } }).error.message).toMatch(
      /\[Service\] User= cannot be used with \[Container\].*\[Container\] User=/,
    );
    expect((await call('GET', '/fleet/v1/units/cuser.service')).status).toBe(404);
  });
  it('[Container] User= alone, or a reset [Service] User=, is fine', async () => {
    const ok = await call('PUT', '/fleet/v1/units/cuser2.service', {
      desiredState: 'inactive',
      options: [
        ...container,
        { section: 'Service', name: 'User', value: 'nobody' },
        { section: 'Service', name: 'User', value: '' },
      ],
    });
    expect(ok.status).toBe(201);
  });
});
