/**
 * Service discovery over real sockets, on the embedded registry: `flotilla list-services` against an
 * agent API on a unix socket, the read-only loopback listener (`services_listen`) answering plain
 * HTTP like etcd v2, and the API watch stream the standalone proxy follows, across an API restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import { ServicesApi, ServicesHttpServer } from '../../src/api/services.js';
import { main } from '../../src/cli/main.js';
import { ServicesView } from '../../src/discovery/services-view.js';
import { RemoteServices } from '../../src/discovery/services-remote.js';
import { isCode } from '../../src/lib/errors.js';
import { EmbeddedKvStore } from '../../src/registry/embedded/index.js';
import { Registry } from '../../src/registry/registry.js';
import type { ServiceEndpointRecord } from '../../src/registry/types.js';
import { nullLogger } from '../../src/lib/log.js';

let dir: string;
let store: EmbeddedKvStore;
let registry: Registry;
let view: ServicesView;
let services: ServicesApi;
let api: ApiServer;
let sock: string;
let lease: string;

const rec = (
  over: Partial<ServiceEndpointRecord> & { service: string; port: number },
): ServiceEndpointRecord => ({
  machineID: '0123456789abcdef0123456789abcdef',
  ip: '10.214.0.11',
  container: 'f00dfeedbeef0123456789',
  health: 'none',
  registered: Date.UTC(2024, 0, 2, 3, 4, 5),
  ...over,
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    [`--endpoint=unix://${sock}`, ...argv],
    { out: (s) => (out += s), err: (s) => (err += s) },
    {},
  );
  return { code, out, err };
}

async function until<T>(what: string, fn: () => T, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-disc-api-'));
  store = await EmbeddedKvStore.open({ dataDir: join(dir, 'registry') });
  registry = new Registry(store);
  lease = (await store.grantLease(60)).id;
  await registry.applyEndpoints(lease, {
    put: [
      rec({ service: 'database', port: 5432, unit: 'db.service' }),
      rec({
        service: 'web',
        port: 8080,
        health: 'starting',
        machineID: 'fedcba9876543210fedcba9876543210',
        ip: '10.214.0.12',
      }),
    ],
  });
  view = new ServicesView(registry);
  await view.start();
  services = new ServicesApi(registry, view);
  sock = join(dir, 'fleet.sock');
  api = new ApiServer([(req) => services.route(req)]);
  await api.listen({ socketPath: sock });
});
afterAll(async () => {
  await api.close();
  view.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('flotilla list-services', () => {
  it('prints one row per endpoint, fleetctl style', async () => {
    const r = await cli('list-services');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      'SERVICE\t\tENDPOINT\t\tMACHINE\t\tHEALTH\t\tUNIT\n' +
        'database\t10.214.0.11:5432\t01234567...\tnone\t\tdb.service\n' +
        'web\t\t10.214.0.12:8080\tfedcba98...\tstarting\t-\n',
    );
  });

  it('one service, chosen columns, --full, no legend, JSON', async () => {
    const r = await cli(
      'list-services',
      'database',
      '--full',
      '--no-legend',
      '--fields=endpoint,machine,container,registered',
    );
    expect(r.out).toBe(
      '10.214.0.11:5432\t0123456789abcdef0123456789abcdef\tf00dfeedbeef0123456789\t2024-01-02T03:04:05.000Z\n',
    );
    const j = await cli('list-services', '-o', 'json');
    const body = JSON.parse(j.out) as { services: { name: string; endpoints: { address: string }[] }[] };
    expect(body.services.map((s) => s.name)).toEqual(['database', 'web']);
    expect(body.services[0]!.endpoints[0]!.address).toBe('10.214.0.11:5432');
  });

  it('fails for a service without endpoints, and for bad flags', async () => {
    const r = await cli('list-services', 'nothing');
    expect(r.code).toBe(1);
    expect(r.err).toBe('Service nothing has no endpoints.\n');
    expect((await cli('list-services', '--fields=bogus')).code).toBe(64);
    expect((await cli('list-services', 'Bad_Name')).err).toContain('invalid service name');
  });
});

describe('the read-only services listener (services_listen)', () => {
  it('answers /v2/keys and /flotilla/v1/services over plain HTTP on loopback, nothing else', async () => {
    const http = new ServicesHttpServer(services);
    await http.listen('127.0.0.1:0');
    try {
      const base = `http://127.0.0.1:${http.port()}`;
      const v2 = await fetch(`${base}/v2/keys/database`);
      expect(v2.status).toBe(200);
      expect(v2.headers.get('x-etcd-index')).toMatch(/^\d+$/);
      expect(await v2.json()).toMatchObject({
        action: 'get',
        node: {
          key: '/database',
          dir: true,
          nodes: [{ key: '/database/0123456789abcdef0123456789abcdef:5432', value: '10.214.0.11:5432' }],
        },
      });
      // web is still starting: not offered to plain clients yet.
      expect((await fetch(`${base}/v2/keys/web`)).status).toBe(404);
      expect((await fetch(`${base}/flotilla/v1/services/web`)).status).toBe(200);
      // No unit or machine API here, and no writes.
      expect((await fetch(`${base}/fleet/v1/units`)).status).toBe(404);
      expect((await fetch(`${base}/v2/keys/database`, { method: 'PUT', body: 'x' })).status).toBe(405);
    } finally {
      await http.close();
    }
  });

  it.each(['0.0.0.0:4001', '10.214.0.1:4001', '[::]:4001', 'localhost', 'bogus'])(
    'refuses %s',
    async (addr) => {
      const http = new ServicesHttpServer(services);
      const err = await http.listen(addr).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCode(err, 'E_CONFIG')).toBe(true);
      expect((err as Error).message).toContain('services_listen');
      await http.close();
    },
  );
});

describe('the API watch stream (what `flotilla proxy` follows)', () => {
  it('gets the full set, each change, and the full set again after the agent API restarts', async () => {
    const remote = new RemoteServices({ endpoint: `unix://${sock}`, log: nullLogger });
    remote.on('error', () => undefined);
    await remote.start();
    try {
      expect(remote.services()).toEqual(['database', 'web']);
      await registry.applyEndpoints(lease, { put: [rec({ service: 'cache', port: 6379 })] });
      await until(
        'cache',
        () => remote.endpoints('cache').length,
        (n) => n === 1,
      );
      // The agent API goes away; meanwhile database loses its endpoint.
      await api.close();
      await until(
        'disconnected',
        () => remote.connected,
        (c) => !c,
      );
      await registry.deregisterEndpoint('database', rec({ service: 'database', port: 5432 }).machineID, 5432);
      expect(remote.endpoints('database')).toHaveLength(1); // last known, kept while disconnected
      api = new ApiServer([(req) => services.route(req)]);
      await api.listen({ socketPath: sock });
      await until(
        'reconnected with the full set',
        () => remote.services(),
        (s) => !s.includes('database'),
      );
      expect(remote.services()).toEqual(['cache', 'web']);
    } finally {
      remote.stop();
    }
  });

  it('start() fails when the agent cannot be reached', async () => {
    const remote = new RemoteServices({ endpoint: `unix://${join(dir, 'nothing.sock')}`, log: nullLogger });
    await expect(remote.start()).rejects.toThrow(/ENOENT/);
    remote.stop();
  });
});
