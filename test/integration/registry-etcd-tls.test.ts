/**
 * The etcd backend over mutual TLS against a real etcd started with --client-cert-auth: the right
 * client certificate works; none, or one from another CA, fails with E_REGISTRY_UNAVAILABLE within
 * the request timeout instead of hanging. Also: an unreachable cluster fails fast; https:// without
 * any TLS file is TLS against the default roots (the first bytes are a ClientHello); a cert/key
 * without a CA file keeps the default roots; a mix of schemes is refused.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { makePki, type Pki } from '../support/certs.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';

const CHILD = fileURLToPath(new URL('./etcd-tls-child.ts', import.meta.url));
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

/** Run etcd-tls-child.ts with the test CA added to Node's default roots; its one line of output. */
function childWithRoots(ca: string, config: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], {
      // grpc-js's default roots: GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when set, else Node's (which
      // NODE_EXTRA_CA_CERTS extends). Both point at the test CA, standing in for /etc/ssl.
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ca, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: ca },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}: ${err}`)),
    );
  });
}

(haveEtcd ? describe : describe.skip)(
  'etcd backend, https:// without a CA file uses the system roots',
  () => {
    let pki: Pki;
    let plainTls: SingleEtcd;
    let mtls: SingleEtcd;
    beforeAll(async () => {
      pki = makePki();
      const files = { ca: pki.ca, serverCert: pki.serverCert, serverKey: pki.serverKey };
      plainTls = await startSingleEtcd({ ...files, clientCertAuth: false });
      mtls = await startSingleEtcd(files);
    });
    afterAll(async () => {
      await plainTls?.stop();
      await mtls?.stop();
      if (pki) rmSync(pki.dir, { recursive: true, force: true });
    });

    it('https:// and no TLS file at all: TLS, verified against the default roots (works when they hold the CA)', async () => {
      expect(await childWithRoots(pki.ca, { endpoints: [plainTls.endpoint] })).toBe('ok via-system-roots');
    });

    it('https:// and no TLS file, CA not among the roots: the server certificate is refused', async () => {
      const store = new EtcdKvStore({
        endpoints: [plainTls.endpoint],
        requestTimeoutMs: 1500,
        dialTimeoutMs: 1000,
      });
      try {
        await expect(store.get('a')).rejects.toSatisfy((e) => isCode(e, 'E_REGISTRY_UNAVAILABLE'));
      } finally {
        await store.close();
      }
    });

    it('etcd_certfile/etcd_keyfile without etcd_cafile keeps the default roots (was: an empty CA, trust nothing)', async () => {
      expect(
        await childWithRoots(pki.ca, {
          endpoints: [mtls.endpoint],
          certFile: pki.clientCert,
          keyFile: pki.clientKey,
        }),
      ).toBe('ok via-system-roots');
    });
  },
);

describe('etcd backend, the first bytes on an https:// endpoint', () => {
  it('are a TLS ClientHello, not the HTTP/2 preface', async () => {
    const server = createServer();
    // Every connection (grpc-js retries) is read once and closed, so server.close() can finish.
    const first = new Promise<Buffer>((resolve) => {
      server.on('connection', (sock) => {
        sock.on('error', () => undefined);
        sock.once('data', (d: Buffer) => {
          resolve(d);
          sock.destroy();
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const store = new EtcdKvStore({
      endpoints: [`https://127.0.0.1:${port}`],
      requestTimeoutMs: 1000,
      dialTimeoutMs: 500,
    });
    try {
      const get = store.get('a').catch(() => undefined);
      const bytes = await first;
      // TLS record type 22 (handshake), version 3.x, handshake type 1 (ClientHello).
      expect(bytes[0]).toBe(0x16);
      expect(bytes[1]).toBe(0x03);
      expect(bytes[5]).toBe(0x01);
      expect(bytes.subarray(0, 3).toString('latin1')).not.toBe('PRI');
      await get;
    } finally {
      await store.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('a mix of http:// and https:// endpoints is refused', () => {
    expect(() => new EtcdKvStore({ endpoints: ['https://127.0.0.1:2379', 'http://127.0.0.2:2379'] })).toThrow(
      /mix of http:\/\/ and https:\/\//,
    );
  });
});
