/**
 * The services_listen listener must not let a local user exhaust the root agent's memory or sockets:
 * idle `?watch=true` clients that never read, while thousands of endpoint changes happen, get an
 * `overflow` line and the end of their stream instead of an ever-growing backlog (once: 20 clients,
 * 3,000 changes, RSS 84 MB → 977 MB). Plus the connection cap and the header timeout (slowloris).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServicesApi, ServicesHttpServer } from '../../../src/api/services.js';
import { ServicesView } from '../../../src/discovery/services-view.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import type { ServiceEndpointRecord } from '../../../src/registry/types.js';

let dir: string;
let store: EmbeddedKvStore;
let registry: Registry;
let view: ServicesView;
let server: ServicesHttpServer;
let lease: string;

const ENDPOINTS = 100;
const rec = (i: number, registered = 1): ServiceEndpointRecord => ({
  service: 'big',
  machineID: `m${i}`,
  ip: '10.214.0.11',
  port: 1000 + i,
  container: `container-with-a-rather-long-name-${i}`,
  health: 'none',
  registered,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-watch-limits-'));
  store = await EmbeddedKvStore.open({ dataDir: dir });
  registry = new Registry(store);
  lease = (await store.grantLease(600)).id;
  await registry.applyEndpoints(lease, { put: Array.from({ length: ENDPOINTS }, (_, i) => rec(i)) });
  view = new ServicesView(registry);
  await view.start();
  server = new ServicesHttpServer(new ServicesApi(registry, view), {
    maxConnections: 40,
    headersTimeoutMs: 1000,
  });
  await server.listen('127.0.0.1:0');
});
afterAll(async () => {
  await server?.close();
  view?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(server.port()!, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('services watch with stalled clients', () => {
  it('20 clients that never read, 3,000 endpoint changes: each gets `overflow` and the end; RSS stays bounded', async () => {
    const base = view.listenerCount('changed');
    const clients = await Promise.all(Array.from({ length: 20 }, () => open()));
    for (const c of clients) {
      c.write('GET /flotilla/v1/services?watch=true HTTP/1.1\r\nHost: x\r\n\r\n');
      c.pause();
    }
    for (let i = 0; i < 100 && view.listenerCount('changed') < base + 20; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(view.listenerCount('changed')).toBe(base + 20);
    const rss0 = process.memoryUsage().rss;
    let rssMax = rss0;
    for (let n = 0; n < 3000; n++) {
      await registry.applyEndpoints(lease, { put: [rec(n % ENDPOINTS, n + 2)] });
      if (n % 100 === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    await new Promise((r) => setTimeout(r, 300));
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
    // Every stalled stream was cut: none of them holds a listener (and a backlog) any more.
    expect(view.listenerCount('changed')).toBe(base);
    // 20 × (4 MiB backlog + socket buffers) at most; unbounded this was hundreds of MB.
    expect(rssMax - rss0).toBeLessThan(200 * 1024 * 1024);
    // Reading now, a client finds its stream ending with the overflow line.
    const tail = await new Promise<string>((resolve) => {
      let text = '';
      const c = clients[0]!;
      c.setEncoding('latin1');
      c.on('data', (d: string) => (text = (text + d).slice(-4096)));
      c.once('end', () => resolve(text));
      c.resume();
    });
    expect(tail).toMatch(/\{"kind":"overflow","revision":\d+\}\n\r\n0\r\n\r\n$/);
    for (const c of clients) c.destroy();
  }, 60_000);
});

describe('services listener limits', () => {
  it('caps connections: past maxConnections a new connection is closed at once', async () => {
    const held = await Promise.all(Array.from({ length: 40 }, () => open()));
    await new Promise((r) => setTimeout(r, 100));
    const extra = await open();
    const closed = await new Promise<boolean>((resolve) => {
      extra.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 2000);
    });
    expect(closed).toBe(true);
    await Promise.all(
      held.map(
        (s) =>
          new Promise((r) => {
            s.once('close', r);
            s.destroy();
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
  });

  it('a client that trickles its headers (slowloris) is cut after the header timeout', async () => {
    const s = await open();
    const t0 = Date.now();
    s.write('GET /flotilla/v1/services HTTP/1.1\r\n');
    const trickle = setInterval(() => s.write('X-A: b\r\n'), 100);
    const closedAfter = await new Promise<number>((resolve) => {
      s.on('data', () => undefined);
      s.once('close', () => resolve(Date.now() - t0));
      setTimeout(() => resolve(-1), 8000);
    });
    clearInterval(trickle);
    s.destroy();
    expect(closedAfter).toBeGreaterThan(500);
    expect(closedAfter).toBeLessThan(4000);
  });
});
