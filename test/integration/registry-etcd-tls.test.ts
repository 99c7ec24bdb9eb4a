/**
 * The etcd backend over mutual TLS against a real etcd started with --client-cert-auth: the right
 * client certificate works; none, or one from another CA, fails with E_REGISTRY_UNAVAILABLE within
 * the request timeout instead of hanging. Also: an unreachable cluster fails fast.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { makePki, type Pki } from '../support/certs.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1')
  throw new Error('etcd is not installed: run test/env/up.sh');

(haveEtcd ? describe : describe.skip)('etcd backend over mTLS', () => {
  let pki: Pki;
  let etcd: SingleEtcd;
  beforeAll(async () => {
    pki = makePki();
    etcd = await startSingleEtcd({ ca: pki.ca, serverCert: pki.serverCert, serverKey: pki.serverKey });
  });
  afterAll(async () => {
    await etcd?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('works with the CA and a client certificate', async () => {
    const store = new EtcdKvStore({
      endpoints: [etcd.endpoint],
      caFile: pki.ca,
      certFile: pki.clientCert,
      keyFile: pki.clientKey,
      prefix: '/tls/',
    });
    try {
      await store.put('a', 'secure');
      expect((await store.get('a'))?.value).toBe('secure');
    } finally {
      await store.close();
    }
  });

  it.each([
    ['no client certificate', false],
    ['a client certificate from another CA', true],
  ])('is refused with %s', async (_, stranger) => {
    const store = new EtcdKvStore({
      endpoints: [etcd.endpoint],
      caFile: pki.ca,
      ...(stranger ? { certFile: pki.strangerCert, keyFile: pki.strangerKey } : {}),
      requestTimeoutMs: 1500,
      prefix: '/tls/',
    });
    const t0 = Date.now();
    try {
      await expect(store.get('a')).rejects.toSatisfy((e) => isCode(e, 'E_REGISTRY_UNAVAILABLE'));
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await store.close();
    }
  });

  it('refuses half a client pair and unreadable files in config, naming the field', () => {
    expect(() => new EtcdKvStore({ endpoints: [etcd.endpoint], certFile: pki.clientCert })).toThrow(
      /etcd_certfile and etcd_keyfile/,
    );
    expect(() => new EtcdKvStore({ endpoints: [etcd.endpoint], caFile: '/nonexistent/ca.pem' })).toThrow(
      /etcd_cafile: cannot read/,
    );
    expect(() => new EtcdKvStore({ endpoints: ['127.0.0.1:2379'] })).toThrow(/etcd_servers/);
  });
});

describe('etcd backend, cluster unreachable', () => {
  it('fails with E_REGISTRY_UNAVAILABLE within the request timeout', async () => {
    // Port 9 on loopback (discard) has no listener here: connection refused.
    const store = new EtcdKvStore({
      endpoints: ['http://127.0.0.1:9'],
      requestTimeoutMs: 1000,
      dialTimeoutMs: 500,
    });
    const t0 = Date.now();
    try {
      await expect(store.put('x', 'y')).rejects.toSatisfy((e) => isCode(e, 'E_REGISTRY_UNAVAILABLE'));
      expect(Date.now() - t0).toBeLessThan(8000);
    } finally {
      await store.close();
    }
  });
});
