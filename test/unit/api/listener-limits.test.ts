/**
 * Every HTTP listener of the agent is bounded (issue 12 §3): the API's unix socket, its mutual-TLS
 * TCP listener, services_listen and the dashboard each cap connections (the one past the cap is
 * closed at once, with a warning naming the listener and the limit) and time out slow headers
 * (slowloris), idle keep-alive connections and, on TLS, a handshake that never comes. Real sockets;
 * the limits are set small here so the tests are quick, the defaults are checked on a real server.
 * The service proxy's limits are in test/unit/proxy/limits.test.ts, services_listen's watch backlog
 * in test/unit/discovery/watch-limits.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harden, LIMITS, type ListenerLimits } from '../../../src/api/limits.js';
import { ApiServer } from '../../../src/api/server.js';
import { ServicesApi, ServicesHttpServer } from '../../../src/api/services.js';
import { Dashboard } from '../../../src/dashboard/server.js';
import { ServicesView } from '../../../src/discovery/services-view.js';
import type { Logger } from '../../../src/lib/log.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import { makePki, type Pki } from '../../support/certs.js';

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}
function recorder(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, msg: string): void => {
      lines.push({ level, msg, fields });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const SMALL: ListenerLimits = {
  maxConnections: 4,
  headersTimeoutMs: 600,
  keepAliveTimeoutMs: 400,
  handshakeTimeoutMs: 600,
};

type Where = { path: string } | { port: number };

function dial(w: Where): Socket {
  const s = 'path' in w ? netConnect(w.path) : netConnect(w.port, '127.0.0.1');
  s.on('error', () => undefined);
  return s;
}
function opened(s: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
}
/** ms until the server closes the socket (-1: still open after `ms`). */
function closedWithin(s: Socket, ms: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(0);
    s.on('data', () => undefined);
    const t = setTimeout(() => resolve(-1), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(Date.now() - t0);
    });
  });
}

/** The cap: `max` connections held (each answered once), one more closed at once, a log line. */
async function checkCap(w: Where, log: ReturnType<typeof recorder>, name: string, max: number) {
  const held = Array.from({ length: max }, () => dial(w));
  await Promise.all(held.map(opened));
  // Let the server accept them all before the extra one comes.
  await new Promise((r) => setTimeout(r, 200));
  const extra = dial(w);
  expect(await closedWithin(extra, 3000)).toBeGreaterThanOrEqual(0);
  const line = log.lines.find((l) => l.msg.includes('connection limit'));
  expect(line, JSON.stringify(log.lines)).toBeDefined();
  expect(line!.msg).toBe(`${name}: connection limit ${max} reached; new connections are closed`);
  expect(line!.level).toBe('warn');
  for (const s of held) s.destroy();
  await new Promise((r) => setTimeout(r, 200));
  // A freed slot serves again.
  const again = dial(w);
  await opened(again);
  again.write('GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const reply = await new Promise<string>((resolve) => {
    let t = '';
    again.on('data', (d: Buffer) => (t += d.toString()));
    again.once('close', () => resolve(t));
  });
  expect(reply).toMatch(/^HTTP\/1\.1 \d{3} /);
}

/** Slowloris: headers trickled past headersTimeout are cut (600 ms here). */
async function checkSlowHeaders(w: Where) {
  const s = dial(w);
  await opened(s);
  s.write('GET /fleet/v1/machines HTTP/1.1\r\n');
  const trickle = setInterval(() => s.writable && s.write('X-A: b\r\n'), 100);
  const ms = await closedWithin(s, 8000);
  clearInterval(trickle);
  s.destroy();
  expect(ms).toBeGreaterThan(300);
  expect(ms).toBeLessThan(5000);
}

/** An idle keep-alive connection is closed after keepAliveTimeout (400 ms here). */
async function checkKeepAlive(w: Where) {
  const s = dial(w);
  await opened(s);
  s.write('GET /x HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise<void>((r) => s.once('data', () => r()));
  const ms = await closedWithin(s, 8000);
  s.destroy();
  expect(ms).toBeGreaterThan(0);
  expect(ms).toBeLessThan(3000); // node's own default is 5 s
}

const ok = () => Promise.resolve({ status: 200, body: { ok: true } });

// One throw-away PKI for the TLS listeners (RSA key generation is slow on a loaded host).
let pki: Pki;
beforeAll(() => {
  pki = makePki();
}, 60_000);
afterAll(() => {
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('the limits every listener gets by default', () => {
  it('harden() sets the header, request, keep-alive and idle timeouts and the cap', () => {
    const s = harden(createHttpServer());
    expect([s.headersTimeout, s.requestTimeout, s.keepAliveTimeout, s.timeout, s.maxConnections]).toEqual([
      LIMITS.headersTimeoutMs,
      LIMITS.requestTimeoutMs,
      LIMITS.keepAliveTimeoutMs,
      LIMITS.idleTimeoutMs,
      LIMITS.maxConnections,
    ]);
  });
});

describe('API unix socket', () => {
  let dir: string;
  let api: ApiServer;
  const log = recorder();
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-limits-'));
    api = new ApiServer([ok]);
    await api.listen({ socketPath: join(dir, 'fleet.sock'), limits: { ...SMALL, log } });
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it('caps connections with a log line', () =>
    checkCap({ path: join(dir, 'fleet.sock') }, log, 'api socket', 4));
  it('cuts slow headers', () => checkSlowHeaders({ path: join(dir, 'fleet.sock') }));
  it('closes idle keep-alive connections', () => checkKeepAlive({ path: join(dir, 'fleet.sock') }));
});

describe('API mutual-TLS listener', () => {
  let api: ApiServer;
  const log = recorder();
  beforeAll(async () => {
    api = new ApiServer([ok]);
    await api.listen({
      tcp: { host: '127.0.0.1', port: 0, ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
      limits: { ...SMALL, log },
    });
  }, 30_000);
  afterAll(async () => {
    await api.close();
  });
  it('a TCP connection that never starts the TLS handshake is closed after the handshake timeout', async () => {
    const s = dial({ port: api.tcpPort()! });
    await opened(s);
    const ms = await closedWithin(s, 8000);
    expect(ms).toBeGreaterThan(300);
    expect(ms).toBeLessThan(5000);
  });
  it('caps connections (before any handshake) with a log line', async () => {
    const port = api.tcpPort()!;
    const held = Array.from({ length: 4 }, () => dial({ port }));
    await Promise.all(held.map(opened));
    await new Promise((r) => setTimeout(r, 100));
    const extra = dial({ port });
    const ms = await closedWithin(extra, 3000);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(400); // at once, not by the handshake timeout
    expect(
      log.lines.some((l) => l.msg === 'api_listen: connection limit 4 reached; new connections are closed'),
    ).toBe(true);
    for (const s of held) s.destroy();
  });
});

describe('services_listen', () => {
  let dir: string;
  let store: EmbeddedKvStore;
  let server: ServicesHttpServer;
  const log = recorder();
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-limits-'));
    store = await EmbeddedKvStore.open({ dataDir: dir });
    const registry = new Registry(store);
    server = new ServicesHttpServer(new ServicesApi(registry, new ServicesView(registry)), {
      ...SMALL,
      log,
      name: 'services_listen',
    });
    await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it('caps connections with a log line', () => checkCap({ port: server.port()! }, log, 'services_listen', 4));
  it('closes idle keep-alive connections', () => checkKeepAlive({ port: server.port()! }));
});

describe('dashboard', () => {
  let dir: string;
  let plain: Dashboard;
  let tls: Dashboard;
  const log = recorder();
  const ctx = (config: Record<string, unknown>) => ({
    config: { dashboardTerminal: false, socketPath: join(dir, 'none.sock'), dataDir: dir, ...config },
    log,
    machineId: 'm',
    signal: new AbortController().signal,
  });
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-limits-'));
    plain = new Dashboard(SMALL);
    await plain.start(ctx({ dashboardListen: '127.0.0.1:0' }));
    tls = new Dashboard(SMALL);
    await tls.start(
      ctx({
        dashboardListen: '127.0.0.1:0',
        dashboardCertfile: pki.serverCert,
        dashboardKeyfile: pki.serverKey,
      }),
    );
  }, 30_000);
  afterAll(async () => {
    await plain.stop();
    await tls.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  it('caps connections with a log line', () => checkCap({ port: plain.port()! }, log, 'dashboard', 4));
  it('cuts slow headers', () => checkSlowHeaders({ port: plain.port()! }));
  it('closes idle keep-alive connections', () => checkKeepAlive({ port: plain.port()! }));
  it('over TLS: a connection that never starts the handshake is closed after the handshake timeout', async () => {
    const s = dial({ port: tls.port()! });
    await opened(s);
    const ms = await closedWithin(s, 8000);
    expect(ms).toBeGreaterThan(300);
    expect(ms).toBeLessThan(5000);
  });
});
