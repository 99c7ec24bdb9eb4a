/**
 * The API over a real etcd (a private single member) that is then stopped: every route that reads or
 * writes the registry answers 503 `fleet server unable to communicate with etcd` (bounded by the
 * request timeout), and the server itself stays up (/metrics and discovery still answer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';
import { call, startAgent, type Agent } from '../unit/api/harness.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1')
  throw new Error('etcd is not installed: run test/env/up.sh');

const opts = [{ section: 'Service', name: 'ExecStart', value: '/bin/sleep 1000' }];

(haveEtcd ? describe : describe.skip)('API with the registry down (real etcd, stopped)', () => {
  let etcd: SingleEtcd;
  let store: EtcdKvStore;
  let a: Agent;
  let stopped = false;

  beforeAll(async () => {
    etcd = await startSingleEtcd();
    store = new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/api-down/', requestTimeoutMs: 1000 });
    a = await startAgent({ store });
  });
  afterAll(async () => {
    await a?.close();
    await store?.close();
    if (!stopped) await etcd?.stop();
  });

  it('works while etcd is up', async () => {
    expect(
      (await call(a.target, 'PUT', '/fleet/v1/units/d.service', { desiredState: 'loaded', options: opts }))
        .status,
    ).toBe(201);
    expect((await call(a.target, 'GET', '/fleet/v1/units/d.service')).status).toBe(200);
  });

  it('answers 503 on every registry route once etcd is gone', async () => {
    await etcd.stop();
    stopped = true;
    const routes: [string, string, unknown?][] = [
      ['GET', '/fleet/v1/units'],
      ['GET', '/fleet/v1/units/d.service'],
      ['PUT', '/fleet/v1/units/d.service', { desiredState: 'launched' }],
      ['PUT', '/fleet/v1/units/e.service', { options: opts }],
      ['DELETE', '/fleet/v1/units/d.service'],
      ['GET', '/fleet/v1/state'],
      ['GET', '/fleet/v1/state/d.service'],
      ['GET', '/fleet/v1/machines'],
      ['PATCH', '/fleet/v1/machines', [{ op: 'add', path: '/x/metadata/k', value: { value: 'v' } }]],
      ['GET', '/flotilla/v1/units/d.service/status'],
      ['GET', '/flotilla/v1/units/d.service/journal'],
    ];
    for (const [method, path, body] of routes) {
      const t0 = performance.now();
      const r = await call(a.target, method, path, body);
      const ms = performance.now() - t0;
      expect({ route: `${method} ${path}`, status: r.status, body: r.json }).toEqual({
        route: `${method} ${path}`,
        status: 503,
        body: { error: { code: 503, message: 'fleet server unable to communicate with etcd' } },
      });
      expect(ms, `${method} ${path} took ${ms.toFixed(0)} ms`).toBeLessThan(10_000);
    }
    // The server itself is fine: metrics and the discovery document still answer.
    expect((await call(a.target, 'GET', '/metrics')).status).toBe(200);
    expect((await call(a.target, 'GET', '/fleet/v1/discovery')).status).toBe(200);
  });
});
