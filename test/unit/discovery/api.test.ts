/**
 * The services API through `dispatch` (no socket) over a real embedded registry: the flotilla shape,
 * etcd v2's `/v2/keys` shape, errors, and the watch stream over a ServicesView.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServicesApi } from '../../../src/api/services.js';
import type { ApiResponse } from '../../../src/api/http.js';
import { dispatch } from '../../../src/api/server.js';
import { ServicesView } from '../../../src/discovery/services-view.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import type { ServiceEndpointRecord } from '../../../src/registry/types.js';

let dir: string;
let store: EmbeddedKvStore;
let registry: Registry;
let view: ServicesView;
let api: ServicesApi;
let lease: string;

const rec = (
  over: Partial<ServiceEndpointRecord> & { service: string; port: number },
): ServiceEndpointRecord => ({
  machineID: 'm1',
  ip: '10.214.0.11',
  container: 'abc',
  health: 'none',
  registered: 1,
  ...over,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-svc-api-'));
  store = await EmbeddedKvStore.open({ dataDir: dir });
  registry = new Registry(store);
  lease = (await store.grantLease(60)).id;
  await registry.applyEndpoints(lease, {
    put: [
      rec({ service: 'database', port: 5432, unit: 'db.service' }),
      rec({ service: 'database', port: 5432, machineID: 'm2', ip: '10.214.0.12' }),
      rec({ service: 'database', port: 5433, machineID: 'm2', ip: '10.214.0.12', health: 'starting' }),
      rec({ service: 'web', port: 80, health: 'healthy' }),
    ],
  });
  view = new ServicesView(registry);
  await view.start();
  api = new ServicesApi(registry, view);
});
afterAll(async () => {
  view.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, path: string): Promise<ApiResponse> {
  const [p, q] = path.split('?');
  return dispatch([(r) => api.route(r)], {
    method,
    path: p!,
    query: new URLSearchParams(q ?? ''),
    headers: {},
    body: Buffer.alloc(0),
  });
}

describe('GET /flotilla/v1/services', () => {
  it('lists every service with every endpoint and its health', async () => {
    const r = await call('GET', '/flotilla/v1/services');
    expect(r.status).toBe(200);
    const body = r.body as {
      revision: number;
      services: { name: string; endpoints: { address: string; health: string }[] }[];
    };
    expect(body.revision).toBeGreaterThan(0);
    expect(body.services.map((s) => s.name)).toEqual(['database', 'web']);
    expect(body.services[0]!.endpoints.map((e) => `${e.address} ${e.health}`)).toEqual([
      '10.214.0.11:5432 none',
      '10.214.0.12:5432 none',
      '10.214.0.12:5433 starting',
    ]);
  });

  it('reads one service; 404 for one without endpoints; 400 for a bad name', async () => {
    const r = await call('GET', '/flotilla/v1/services/web');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'web',
      endpoints: [{ address: '10.214.0.11:80', health: 'healthy' }],
    });
    const nf = await call('GET', '/flotilla/v1/services/nothing');
    expect(nf).toMatchObject({
      status: 404,
      body: { error: { code: 404, message: 'service nothing has no endpoints' } },
    });
    const bad = await call('GET', '/flotilla/v1/services/Bad_Name');
    expect(bad.status).toBe(400);
    expect((bad.body as { error: { message: string } }).error.message).toContain('invalid service name');
  });

  it('is read-only', async () => {
    for (const m of ['PUT', 'POST', 'DELETE']) {
      expect((await call(m, '/flotilla/v1/services/web')).status).toBe(405);
      expect((await call(m, '/v2/keys/web')).status).toBe(405);
    }
  });

  it('leaves other paths to other handlers', async () => {
    expect(
      await api.route({
        method: 'GET',
        path: '/fleet/v1/units',
        query: new URLSearchParams(),
        headers: {},
        body: Buffer.alloc(0),
      }),
    ).toBeUndefined();
  });
});

describe('GET /v2/keys (etcd v2 shape)', () => {
  it('answers a service as a directory of usable endpoints, value IP:PORT', async () => {
    const r = await call('GET', '/v2/keys/database');
    expect(r.status).toBe(200);
    expect(r.headers?.['X-Etcd-Index']).toMatch(/^\d+$/);
    const node = (
      r.body as {
        action: string;
        node: { key: string; dir: boolean; nodes: { key: string; value: string; modifiedIndex: number }[] };
      }
    ).node;
    expect((r.body as { action: string }).action).toBe('get');
    expect(node.key).toBe('/database');
    expect(node.dir).toBe(true);
    // The starting endpoint is not offered to clients.
    expect(node.nodes.map((n) => [n.key, n.value])).toEqual([
      ['/database/m1:5432', '10.214.0.11:5432'],
      ['/database/m2:5432', '10.214.0.12:5432'],
    ]);
    expect(node.nodes[0]!.modifiedIndex).toBeGreaterThan(0);
  });

  it('answers one endpoint, the root, and 404 errorCode 100 like etcd', async () => {
    const one = await call('GET', '/v2/keys/database/m2:5432');
    expect(one.body).toMatchObject({
      action: 'get',
      node: { key: '/database/m2:5432', value: '10.214.0.12:5432' },
    });
    const root = await call('GET', '/v2/keys/');
    expect((root.body as { node: { nodes: { key: string }[] } }).node.nodes.map((n) => n.key)).toEqual([
      '/database',
      '/web',
    ]);
    const rec = await call('GET', '/v2/keys?recursive=true');
    expect((rec.body as { node: { nodes: { nodes: unknown[] }[] } }).node.nodes[0]!.nodes).toHaveLength(2);
    for (const p of ['/v2/keys/nothing', '/v2/keys/database/m9:1', '/v2/keys/Bad', '/v2/keys/database/a/b']) {
      const nf = await call('GET', p);
      expect(nf.status).toBe(404);
      expect(nf.body).toMatchObject({ errorCode: 100, message: 'Key not found' });
    }
  });
});

describe('GET /flotilla/v1/services?watch=true', () => {
  it('streams the full set, then each change with the full list of the changed service', async () => {
    const r = await call('GET', '/flotilla/v1/services?watch=true');
    expect(r.status).toBe(200);
    const it = r.stream![Symbol.asyncIterator]();
    const next = async () =>
      JSON.parse((await it.next()).value as string) as {
        revision: number;
        services: Record<string, { port: number }[]>;
      };
    const first = await next();
    expect(Object.keys(first.services)).toEqual(['database', 'web']);
    expect(first.services.database).toHaveLength(3);
    await registry.deregisterEndpoint('web', 'm1', 80);
    const gone = await next();
    expect(gone.services).toEqual({ web: [] });
    expect(gone.revision).toBeGreaterThan(first.revision);
    await registry.registerEndpoint(rec({ service: 'web', port: 81 }), lease);
    expect((await next()).services.web!.map((e) => e.port)).toEqual([81]);
    // The client went away: the stream's listener is removed.
    const before = view.listenerCount('changed');
    await it.return!();
    expect(view.listenerCount('changed')).toBe(before - 1);
  });

  it('a revoked lease takes its endpoints with it', async () => {
    const l2 = (await store.grantLease(60)).id;
    await registry.registerEndpoint(rec({ service: 'cache', port: 6379, machineID: 'm3' }), l2);
    expect((await call('GET', '/flotilla/v1/services/cache')).status).toBe(200);
    await store.revokeLease(l2);
    expect((await call('GET', '/flotilla/v1/services/cache')).status).toBe(404);
  });
});

describe('ServicesView ignores records that are not endpoints', () => {
  it('skips a bad address or port, from the start and from the watch', async () => {
    const key = (m: string, port: number) => `services/database/${m}:${port}`;
    const bogus = [
      {
        k: key('x1', 1),
        v: { ...rec({ service: 'database', port: 1, machineID: 'x1' }), ip: 'evil; flush ruleset' },
      },
      { k: key('x2', 0), v: rec({ service: 'database', port: 0, machineID: 'x2' }) },
      { k: key('x3', 70000), v: rec({ service: 'database', port: 70000, machineID: 'x3' }) },
    ];
    for (const b of bogus) await store.put(b.k, JSON.stringify(b.v));
    await new Promise((r) => setTimeout(r, 100));
    // they are there, under the service's prefix (so the view did see them)
    expect((await registry.listEndpoints('database')).entries).toHaveLength(6);
    const fresh = new ServicesView(registry);
    await fresh.start();
    try {
      for (const v of [view, fresh]) {
        expect(v.endpoints('database').map((e) => `${e.machineID}:${e.port}`)).toEqual([
          'm1:5432',
          'm2:5432',
          'm2:5433',
        ]);
      }
    } finally {
      fresh.stop();
      for (const b of bogus) await store.delete(b.k);
    }
  });
});
