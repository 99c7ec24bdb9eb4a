/**
 * Certificate rotation on the API's mutual-TLS listener without a restart (SIGHUP →
 * startApi().reloadTls() → ApiServer.reloadTls()), on a real listener with certificates made by
 * `openssl` (argv, no shell): new handshakes present the new server certificate (checked by
 * fingerprint and serial), an open keep-alive connection carries on with the old one, a CA bundle
 * change decides which client certificates get in, and a bad rotation (key of another certificate,
 * a missing file, a corrupt CA) keeps the old context, with a log line naming the file and never
 * any key material.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startApi, type StartedApi } from '../../../src/daemon/api.js';
import { DEFAULTS, type AgentConfig } from '../../../src/daemon/config.js';
import { ServicesView } from '../../../src/discovery/services-view.js';
import type { Logger } from '../../../src/lib/log.js';
import { ClusterView } from '../../../src/registry/cluster-view.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import { issueCert, makeCa, makePki, type Pki } from '../../support/certs.js';

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}
const lines: Line[] = [];
const at =
  (level: string) =>
  (fields: Record<string, unknown>, msg: string): void => {
    lines.push({ level, msg, fields });
  };
const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };

let pki: Pki;
let store: EmbeddedKvStore;
let api: StartedApi;
let port: number;
/** The files the listener was configured with (rotated in place, as an operator does). */
let files: { ca: string; cert: string; key: string };

const fp = (pemFile: string) => new X509Certificate(readFileSync(pemFile)).fingerprint256;
const serial = (pemFile: string) => new X509Certificate(readFileSync(pemFile)).serialNumber;

/** A TLS connection to the listener with a client certificate; resolves once the handshake is done. */
function dial(client: { cert: string; key: string }, ca: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: ca.map((f) => readFileSync(f)),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One HTTP/1.1 request on an open TLS socket (keep-alive); resolves with the status code. */
function get(s: TLSSocket, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /content-length: (\d+)/i.exec(buf.slice(0, end));
      if (len && buf.length < end + 4 + Number(len[1])) return;
      s.off('data', onData);
      resolve(Number(buf.slice(9, 12)));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before a response')));
    s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`);
  });
}

/** The server certificate a fresh handshake presents; the socket is closed. */
async function presented(client = { cert: pki.clientCert, key: pki.clientKey }, ca = [files.ca]) {
  const s = await dial(client, ca);
  const c: PeerCertificate = s.getPeerCertificate();
  s.destroy();
  return { fingerprint256: c.fingerprint256, serialNumber: c.serialNumber };
}

/** Does a handshake with this client certificate get a 200 from the API? */
async function admitted(client: { cert: string; key: string }, ca = [files.ca]): Promise<boolean> {
  try {
    const s = await dial(client, ca);
    try {
      return (await get(s, '/fleet/v1/machines')) === 200;
    } finally {
      s.destroy();
    }
  } catch {
    return false;
  }
}

beforeAll(async () => {
  pki = makePki();
  // The listener's own copies, rotated in place below.
  files = { ca: join(pki.dir, 'api-ca.pem'), cert: join(pki.dir, 'api.pem'), key: join(pki.dir, 'api.key') };
  copyFileSync(pki.ca, files.ca);
  copyFileSync(pki.serverCert, files.cert);
  copyFileSync(pki.serverKey, files.key);
  // The next generation, and one certificate whose key will not match.
  writeFileSync(
    join(pki.dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,URI:urn:flotilla:role:agent\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  issueCert(pki.dir, 'server2', 'ca', 'server.ext');
  makeCa(pki.dir, 'ca2');
  issueCert(pki.dir, 'server3', 'ca2', 'server.ext');
  issueCert(pki.dir, 'client3', 'ca2', 'client.ext');

  store = await EmbeddedKvStore.open({ dataDir: join(pki.dir, 'registry') });
  const registry = new Registry(store);
  const view = new ClusterView(registry);
  await view.start();
  const config: AgentConfig = {
    ...DEFAULTS,
    socketPath: join(pki.dir, 'fleet.sock'),
    apiListen: '127.0.0.1:0',
    apiCafile: files.ca,
    apiCertfile: files.cert,
    apiKeyfile: files.key,
  };
  api = await startApi({
    config,
    registry,
    view,
    servicesView: new ServicesView(registry),
    machineID: 'a'.repeat(32),
    log,
  });
  port = api.tcpPort()!;
}, 60_000);

afterAll(async () => {
  await api?.close();
  await store?.close();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

beforeEach(() => {
  lines.length = 0;
});

vi.setConfig({ testTimeout: 30_000 });

describe('API mutual-TLS certificate rotation (SIGHUP)', () => {
  it('new handshakes present the new server certificate; an open connection carries on', async () => {
    expect((await presented()).fingerprint256).toBe(fp(pki.serverCert));
    const open = await dial({ cert: pki.clientCert, key: pki.clientKey }, [files.ca]);
    expect(await get(open, '/fleet/v1/machines')).toBe(200);

    copyFileSync(join(pki.dir, 'server2.pem'), files.cert);
    copyFileSync(join(pki.dir, 'server2.key'), files.key);
    api.reloadTls();

    const now = await presented();
    expect(now.fingerprint256).toBe(fp(join(pki.dir, 'server2.pem')));
    expect(now.serialNumber.toUpperCase()).toBe(serial(join(pki.dir, 'server2.pem')).toUpperCase());
    expect(now.fingerprint256).not.toBe(fp(pki.serverCert));
    // The connection opened before the reload was not dropped: same session, old certificate.
    expect(open.destroyed).toBe(false);
    expect(open.getPeerCertificate().fingerprint256).toBe(fp(pki.serverCert));
    expect(await get(open, '/fleet/v1/machines')).toBe(200);
    open.destroy();
    const ok = lines.find((l) => l.msg.startsWith('API TLS certificates reloaded'));
    expect(ok, JSON.stringify(lines)).toBeDefined();
    expect(ok!.fields).toMatchObject({ certfile: files.cert, keyfile: files.key, cafile: files.ca });
  });

  it('a CA rotation: a bundle of old + new CA admits both generations; the new CA alone only the new', async () => {
    const client3 = { cert: join(pki.dir, 'client3.pem'), key: join(pki.dir, 'client3.key') };
    const old = { cert: pki.clientCert, key: pki.clientKey };
    const ca2 = join(pki.dir, 'ca2.pem');
    expect(await admitted(client3, [files.ca])).toBe(false);

    // Step 1: trust both CAs (clients keep working while they get new certificates).
    writeFileSync(files.ca, Buffer.concat([readFileSync(pki.ca), readFileSync(ca2)]));
    api.reloadTls();
    expect(await admitted(old, [pki.ca])).toBe(true);
    expect(await admitted(client3, [pki.ca])).toBe(true);

    // Step 2: the server certificate from the new CA (clients trust both CAs meanwhile).
    copyFileSync(join(pki.dir, 'server3.pem'), files.cert);
    copyFileSync(join(pki.dir, 'server3.key'), files.key);
    api.reloadTls();
    expect((await presented(client3, [pki.ca, ca2])).fingerprint256).toBe(fp(join(pki.dir, 'server3.pem')));

    // Step 3: drop the old CA: old client certificates are refused, new ones get in.
    copyFileSync(ca2, files.ca);
    api.reloadTls();
    expect(await admitted(client3, [ca2])).toBe(true);
    expect(await admitted(old, [ca2])).toBe(false);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('a key that is not the certificate’s keeps the old context, and the log names the files, not the key', async () => {
    const before = (
      await presented({ cert: join(pki.dir, 'client3.pem'), key: join(pki.dir, 'client3.key') }, [
        join(pki.dir, 'ca2.pem'),
      ])
    ).fingerprint256;
    const goodCert = readFileSync(files.cert);
    const goodKey = readFileSync(files.key);
    // Half-way through a rotation: the new certificate is in place, its key is not (server2's is).
    copyFileSync(join(pki.dir, 'server.pem'), files.cert);
    const wrongKey = readFileSync(join(pki.dir, 'server2.key'));
    writeFileSync(files.key, wrongKey);
    api.reloadTls();
    const bad = lines.find((l) => l.level === 'error');
    expect(bad, JSON.stringify(lines)).toBeDefined();
    expect(bad!.msg).toBe('API TLS reload failed; keeping the old certificates');
    const text = JSON.stringify(bad);
    expect(text).toContain(files.cert);
    expect(text).toContain(files.key);
    // No key material in any line: no PEM header, no line of the key's base64 body.
    const all = JSON.stringify(lines);
    expect(all).not.toContain('PRIVATE KEY');
    for (const l of wrongKey
      .toString()
      .split('\n')
      .filter((x) => x.length > 20 && !x.startsWith('-----')))
      expect(all).not.toContain(l);
    expect(lines.some((l) => l.msg.startsWith('API TLS certificates reloaded'))).toBe(false);
    // The listener still presents the certificate it had.
    const after = await presented({ cert: join(pki.dir, 'client3.pem'), key: join(pki.dir, 'client3.key') }, [
      join(pki.dir, 'ca2.pem'),
    ]);
    expect(after.fingerprint256).toBe(before);
    writeFileSync(files.cert, goodCert);
    writeFileSync(files.key, goodKey);
  });

  it('a missing key file, or a CA file that is not PEM: the old context stays, the file is named', async () => {
    const client3 = { cert: join(pki.dir, 'client3.pem'), key: join(pki.dir, 'client3.key') };
    const ca2 = join(pki.dir, 'ca2.pem');
    const before = (await presented(client3, [ca2])).fingerprint256;
    const goodKey = readFileSync(files.key);
    rmSync(files.key);
    api.reloadTls();
    const missing = lines.find((l) => l.level === 'error');
    expect(JSON.stringify(missing)).toContain(`api_keyfile: cannot read ${files.key}`);
    writeFileSync(files.key, goodKey);

    lines.length = 0;
    const goodCa = readFileSync(files.ca);
    writeFileSync(files.ca, 'not a certificate\n');
    api.reloadTls();
    const corrupt = lines.find((l) => l.level === 'error');
    expect(corrupt, JSON.stringify(lines)).toBeDefined();
    expect(JSON.stringify(corrupt)).toContain(files.ca);
    // Still serving, with the same certificate, and still admitting the current clients.
    expect((await presented(client3, [ca2])).fingerprint256).toBe(before);
    expect(await admitted(client3, [ca2])).toBe(true);
    writeFileSync(files.ca, goodCa);
  });
});
