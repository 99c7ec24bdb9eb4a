/**
 * fetchWithRetry against a real HTTP server on 127.0.0.1: retries on 5xx and network errors, 4xx
 * final, per-attempt timeout against a server that never answers, the body bound, abort, schemes,
 * and logs that name the URL and attempt without credentials.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchWithRetry, isNotFound, redactUrl } from '../../../src/datasource/http.js';
import { recorder } from './log-recorder.js';

let server: Server;
let base: string;
const hits = new Map<string, number>();
const hanging: ServerResponse[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0]!;
  const n = (hits.get(path) ?? 0) + 1;
  hits.set(path, n);
  if (path.startsWith('/flaky')) {
    if (n <= 2) {
      res.writeHead(503).end('busy');
      return;
    }
    res.writeHead(200).end('#cloud-config\nhostname: ok\n');
  } else if (path === '/missing') {
    res.writeHead(404).end('no');
  } else if (path === '/always-500') {
    res.writeHead(500).end('broken');
  } else if (path === '/hang') {
    hanging.push(res);
  } else if (path === '/big-declared') {
    res.writeHead(200, { 'content-length': '4096' }).end(Buffer.alloc(4096, 0x61));
  } else if (path === '/big-chunked') {
    res.writeHead(200);
    res.write(Buffer.alloc(2048, 0x61));
    res.end(Buffer.alloc(2048, 0x62));
  } else if (path === '/redirect') {
    res.writeHead(302, { location: '/target' }).end();
  } else {
    res.writeHead(200).end(`hello ${path}`);
  }
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const r of hanging) r.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const fast = { initialBackoffMs: 5, maxBackoffMs: 20 };

describe('fetchWithRetry', () => {
  it('retries 503s and returns the body of the 200, logging each failed attempt', async () => {
    const log = recorder();
    const body = await fetchWithRetry(`${base}/flaky`, { ...fast, log });
    expect(body.toString()).toBe('#cloud-config\nhostname: ok\n');
    expect(hits.get('/flaky')).toBe(3);
    const warns = log.lines.filter((l) => l.startsWith('warn'));
    expect(warns).toHaveLength(2);
    expect(warns[0]).toContain(`${base}/flaky`);
    expect(warns[0]).toContain('"attempt":1');
    expect(warns[1]).toContain('"attempt":2');
    expect(warns[1]).toContain('HTTP 503');
    expect(log.text()).not.toContain('hostname: ok');
  });

  it('follows redirects', async () => {
    expect((await fetchWithRetry(`${base}/redirect`, fast)).toString()).toBe('hello /target');
  });

  it('treats a 4xx as not found at once (one request)', async () => {
    const err = await fetchWithRetry(`${base}/missing`, fast).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toContain(`${base}/missing: not found (HTTP 404)`);
    expect(hits.get('/missing')).toBe(1);
  });

  it('gives up after the attempts with an error naming the URL and the last error', async () => {
    const err = (await fetchWithRetry(`${base}/always-500`, { ...fast, attempts: 4 }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toBe(`cannot fetch ${base}/always-500 after 4 attempts: HTTP 500`);
    expect(isNotFound(err)).toBe(false);
    expect(hits.get('/always-500')).toBe(4);
  });

  it('times out each attempt against a server that accepts and never answers', async () => {
    const t0 = Date.now();
    const log = recorder();
    const err = (await fetchWithRetry(`${base}/hang`, { ...fast, attempts: 2, timeoutMs: 300, log }).catch(
      (e: unknown) => e,
    )) as Error;
    const took = Date.now() - t0;
    expect(err.message).toMatch(new RegExp(`^cannot fetch ${base}/hang after 2 attempts: ETIMEDOUT`));
    expect(took).toBeGreaterThanOrEqual(600);
    expect(took).toBeLessThan(5000);
    expect(hits.get('/hang')).toBe(2);
  });

  it('retries connection refused (network down) and names the URL', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const log = recorder();
    const err = (await fetchWithRetry(`http://127.0.0.1:${port}/x`, { ...fast, attempts: 3, log }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toContain(`cannot fetch http://127.0.0.1:${port}/x after 3 attempts: ECONNREFUSED`);
    expect(log.lines.filter((l) => l.includes('ECONNREFUSED'))).toHaveLength(3);
  });

  it('refuses a body over the bound, declared or streamed, without retrying', async () => {
    for (const p of ['/big-declared', '/big-chunked']) {
      const err = (await fetchWithRetry(`${base}${p}`, { ...fast, maxBytes: 1024 }).catch(
        (e: unknown) => e,
      )) as Error;
      expect(err.message).toBe(`${base}${p}: the body is larger than 1024 bytes`);
      expect(hits.get(p)).toBe(1);
    }
    expect((await fetchWithRetry(`${base}/big-chunked`, { maxBytes: 4096 })).length).toBe(4096);
  });

  it('only takes http and https', async () => {
    await expect(fetchWithRetry('file:///etc/passwd')).rejects.toThrow(
      /only http and https URLs are supported, not file:/,
    );
    await expect(fetchWithRetry('ftp://127.0.0.1/x')).rejects.toThrow(/not ftp:/);
    await expect(fetchWithRetry('not a url')).rejects.toThrow(/invalid URL/);
  });

  it('stops when aborted, also while sleeping between attempts', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const p = fetchWithRetry(`${base}/always-500`, { initialBackoffMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    await expect(p).rejects.toThrow(`fetching ${base}/always-500: aborted`);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('never logs credentials or the query of the URL', async () => {
    const log = recorder();
    const url = `http://admin:s3cret@127.0.0.1:${new URL(base).port}/always-500?token=t0ps3cret`;
    const err = (await fetchWithRetry(url, { ...fast, attempts: 2, log }).catch((e: unknown) => e)) as Error;
    const all = `${log.text()}\n${err.message}\n${JSON.stringify((err as { details?: unknown }).details)}`;
    expect(all).toContain('/always-500?…');
    expect(all).not.toContain('s3cret');
    expect(all).not.toContain('t0ps3cret');
    expect(redactUrl('https://u:p@h.example/a/b#frag')).toBe('https://h.example/a/b');
  });
});
