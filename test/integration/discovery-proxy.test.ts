/**
 * The service proxy with real TCP servers on loopback and a real (private) etcd as the registry:
 * balancing, following registry changes, draining, failover on connect errors, refusing with no
 * endpoint, and `flotilla proxy` as a process following an agent API over a unix socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import { ServicesApi } from '../../src/api/services.js';
import { ServiceProxy } from '../../src/proxy/proxy.js';
import { ServicesView } from '../../src/discovery/services-view.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { Registry } from '../../src/registry/registry.js';
import type { ServiceEndpointRecord } from '../../src/registry/types.js';
import type { Logger } from '../../src/lib/log.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1') {
  throw new Error('etcd is not installed: run test/env/up.sh (TESTENV_REQUIRED=1 forbids skipping)');
}

/** A TCP server on 127.0.0.1 that answers every line with `<name>:<line>`; counts its connections. */
interface Backend {
  name: string;
  port: number;
  server: Server;
  accepted: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function backend(name: string): Promise<Backend> {
  const b = { name, accepted: 0, sockets: new Set<Socket>() } as Backend;
  b.server = createServer((s) => {
    b.accepted++;
    b.sockets.add(s);
    s.on('close', () => b.sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        s.write(`${name}:${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.port = (b.server.address() as { port: number }).port;
  b.close = () =>
    new Promise<void>((r) => {
      for (const s of b.sockets) s.destroy();
      b.server.close(() => r());
    });
  return b;
}

/** A client connection with line-based request/response. */
interface Client {
  ask(line: string): Promise<string>;
  closed: Promise<string>;
  socket: Socket;
}

function client(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.setEncoding('utf8');
    let buf = '';
    const waiting: ((l: string) => void)[] = [];
    let resolveClosed!: (why: string) => void;
    const closed = new Promise<string>((r) => (resolveClosed = r));
    s.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        waiting.shift()?.(line);
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      resolveClosed(e.code ?? e.message);
      reject(e);
    });
    s.on('close', () => {
      resolveClosed('closed');
      for (const w of waiting.splice(0)) w('<closed>');
    });
    s.on('connect', () =>
      resolve({
        socket: s,
        closed,
        ask: (line) =>
          new Promise<string>((r) => {
            waiting.push(r);
            s.write(`${line}\n`);
          }),
      }),
    );
  });
}

/** One connection, one question, closed: who answered (or the error code). */
async function once(port: number): Promise<string> {
  try {
    const c = await client(port);
    const answer = await Promise.race([c.ask('hi'), c.closed.then((why) => `<${why}>`)]);
    c.socket.end();
    await c.closed;
    return answer.split(':')[0]!;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

class CapturingLogger implements Logger {
  lines: string[] = [];
  debug(): void {}
  info(_f: Record<string, unknown>, msg: string): void {
    this.lines.push(`info ${msg}`);
  }
  warn(_f: Record<string, unknown>, msg: string): void {
    this.lines.push(`warn ${msg}`);
  }
  error(_f: Record<string, unknown>, msg: string): void {
    this.lines.push(`error ${msg}`);
  }
}

async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  ok: (v: T) => boolean,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

(haveEtcd ? describe : describe.skip)('service proxy over a real etcd', () => {
  let etcd: SingleEtcd;
  let store: EtcdKvStore;
  let registry: Registry;
  let view: ServicesView;
  let lease: string;
  let n = 0;
  let service: string;
  const backends: Backend[] = [];

  const rec = (b: { port: number }, machineID = `m-${b.port}`): ServiceEndpointRecord => ({
    service,
    machineID,
    ip: '127.0.0.1',
    port: b.port,
    container: `c-${b.port}`,
    health: 'none',
    registered: Date.now(),
  });
  const add = (...bs: { port: number }[]) => registry.applyEndpoints(lease, { put: bs.map((b) => rec(b)) });
  const remove = (...bs: { port: number }[]) =>
    registry.applyEndpoints(lease, {
      remove: bs.map((b) => ({ service, machineID: `m-${b.port}`, port: b.port })),
    });

  async function startProxy(log: Logger = new CapturingLogger(), drainTimeoutMs = 30_000) {
    const proxy = new ServiceProxy({
      listen: [{ service, host: '127.0.0.1', port: 0 }],
      source: view,
      log,
      drainTimeoutMs,
      connectTimeoutMs: 1000,
      // This suite covers the user-space path (least connections, retry on connect errors);
      // the kernel path has its own, in a private network namespace (proxy-kernel.test.ts).
      mode: 'userspace',
    });
    await proxy.start();
    const port = Number(proxy.addresses()[0]!.address.split(':')[1]);
    // The registry writes before this were acknowledged; wait until the watch brought them here.
    const { entries } = await registry.listEndpoints(service);
    const usable = entries.filter((e) => e.record.health === 'none' || e.record.health === 'healthy').length;
    await until(
      'proxy has the registered endpoints',
      () => proxy.stats()[0]!.endpoints.length,
      (k) => k === usable,
    );
    return { proxy, port };
  }

  beforeAll(async () => {
    etcd = await startSingleEtcd();
    store = new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/flotilla/' });
    registry = new Registry(store);
    lease = (await store.grantLease(120)).id;
    view = new ServicesView(registry);
    await view.start();
    for (const name of ['a', 'b', 'c']) backends.push(await backend(name));
  });
  afterAll(async () => {
    view?.stop();
    for (const b of backends) await b.close();
    await store?.close();
    await etcd?.stop();
  });
  beforeEach(() => {
    service = `svc${++n}`;
    for (const b of backends) b.accepted = 0;
  });

  it('balances connections across the live endpoints', async () => {
    await add(...backends);
    const { proxy, port } = await startProxy();
    try {
      await until(
        '3 endpoints',
        () => proxy.stats()[0]!.endpoints.length,
        (k) => k === 3,
      );
      const answers: string[] = [];
      for (let i = 0; i < 30; i++) answers.push(await once(port));
      expect(answers.filter((a) => a === 'a')).toHaveLength(10);
      expect(answers.filter((a) => a === 'b')).toHaveLength(10);
      expect(answers.filter((a) => a === 'c')).toHaveLength(10);
      // Held connections count: with two held open, the next one goes to the third endpoint.
      const c1 = await client(port);
      const c2 = await client(port);
      const first = [await c1.ask('x'), await c2.ask('x')].map((s) => s.split(':')[0]).sort();
      const third = await once(port);
      expect(first).not.toContain(third);
      c1.socket.end();
      c2.socket.end();
      await Promise.all([c1.closed, c2.closed]);
    } finally {
      await proxy.close();
    }
  });

  it('follows registry changes: a new endpoint gets traffic, a removed one none, within 1 s', async () => {
    const [a, b] = backends as [Backend, Backend];
    await add(a);
    const { proxy, port } = await startProxy();
    try {
      expect(await once(port)).toBe('a');
      const t0 = performance.now();
      await add(b);
      await remove(a);
      // The watch applies the change: measure until the proxy's balancer has only b.
      await until(
        'rerouted',
        () => proxy.stats()[0]!.endpoints,
        (e) => e.length === 1 && e[0] === `127.0.0.1:${b.port}`,
        1000,
      );
      const ms = performance.now() - t0;
      for (let i = 0; i < 5; i++) expect(await once(port)).toBe('b');
      console.log(`[proxy] registry change applied ${ms.toFixed(1)} ms after the writes`);
    } finally {
      await proxy.close();
    }
  });

  it('drains a removed endpoint: open connections keep working, new ones go elsewhere, cut after the grace period', async () => {
    const [a, b] = backends as [Backend, Backend];
    await add(a);
    const log = new CapturingLogger();
    const { proxy, port } = await startProxy(log, 1500);
    try {
      const held = await client(port);
      expect(await held.ask('1')).toBe('a:1');
      await add(b);
      await remove(a);
      await until(
        'a draining',
        () => proxy.stats()[0]!,
        (s) => s.draining === 1,
      );
      // Still answered by a, through the same connection.
      expect(await held.ask('2')).toBe('a:2');
      expect(await once(port)).toBe('b');
      expect(log.lines.some((l) => /endpoint removed; draining 1 connection/.test(l))).toBe(true);
      // After the grace period the connection is cut.
      const t0 = performance.now();
      expect(await held.closed).toBe('closed');
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(log.lines.some((l) => /drain time is up/.test(l))).toBe(true);
      await until(
        'drained',
        () => proxy.stats()[0]!,
        (st) => st.draining === 0 && st.active === 0,
      );
    } finally {
      await proxy.close();
    }
  });

  it('a drained connection that ends by itself is not cut, and the endpoint is forgotten', async () => {
    const [a, b] = backends as [Backend, Backend];
    await add(a, b);
    const log = new CapturingLogger();
    const { proxy, port } = await startProxy(log, 60_000);
    try {
      const held = await client(port);
      const who = (await held.ask('1')).split(':')[0]!;
      const gone = who === 'a' ? a : b;
      await remove(gone);
      await until(
        'draining',
        () => proxy.stats()[0]!,
        (s) => s.draining === 1,
      );
      expect(await held.ask('2')).toBe(`${who}:2`);
      held.socket.end();
      expect(await held.closed).toBe('closed');
      await until(
        'drained',
        () => proxy.stats()[0]!,
        (s) => s.active === 0 && s.draining === 0,
      );
      expect(log.lines.some((l) => /drain time is up/.test(l))).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('tries the next endpoint when one refuses, and backs off from it', async () => {
    const dead = await backend('dead');
    await dead.close(); // a port nobody listens on
    const [a] = backends as [Backend];
    await add(dead, a);
    const { proxy, port } = await startProxy();
    try {
      await until(
        '2 endpoints',
        () => proxy.stats()[0]!.endpoints.length,
        (k) => k === 2,
      );
      const answers: string[] = [];
      for (let i = 0; i < 10; i++) answers.push(await once(port));
      expect(answers).toEqual(Array(10).fill('a'));
      // Backed off after the first refusal: not retried on every connection.
      expect(proxy.stats()[0]!.connectFailures).toBeGreaterThanOrEqual(1);
      expect(proxy.stats()[0]!.connectFailures).toBeLessThan(5);
    } finally {
      await proxy.close();
    }
  });

  it('refuses (reset) with a log line when there is no endpoint, and serves once one appears', async () => {
    const log = new CapturingLogger();
    const { proxy, port } = await startProxy(log);
    try {
      expect(await once(port)).toBe('ECONNRESET');
      expect(await once(port)).toBe('ECONNRESET');
      expect(
        log.lines.filter((l) => /no endpoint for service svc\d+: connection refused/.test(l)),
      ).toHaveLength(1);
      expect(proxy.stats()[0]!.refused).toBe(2);
      await add(backends[2]!);
      await until(
        'endpoint',
        () => proxy.stats()[0]!.endpoints.length,
        (k) => k === 1,
        1000,
      );
      expect(await once(port)).toBe('c');
      // A starting (not yet healthy) endpoint gets no traffic.
      await registry.applyEndpoints(lease, { put: [{ ...rec(backends[2]!), health: 'starting' }] });
      await until(
        'no usable endpoint',
        () => proxy.stats()[0]!.endpoints.length,
        (k) => k === 0,
        1000,
      );
      expect(await once(port)).toBe('ECONNRESET');
    } finally {
      await proxy.close();
    }
  });

  it('passes half-closes through: the client ends its side and still reads the answer', async () => {
    const [a] = backends as [Backend];
    await add(a);
    const { proxy, port } = await startProxy();
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        let data = '';
        s.setEncoding('utf8');
        s.on('connect', () => s.end('one\ntwo\n'));
        s.on('data', (d: string) => (data += d));
        s.on('close', () => resolve(data));
        s.on('error', reject);
      });
      expect(answer).toBe('a:one\na:two\n');
    } finally {
      await proxy.close();
    }
  });

  it('moves bulk data intact both ways, with a slow reader (backpressure)', async () => {
    // A backend that sends 24 MiB of a pattern, then echoes a digest of what it received.
    const size = 24 * 1024 * 1024;
    const pattern = (i: number) => Buffer.alloc(64 * 1024, i % 251);
    const expected = createHash('sha256');
    for (let i = 0; i < size / (64 * 1024); i++) expected.update(pattern(i));
    const digest = expected.digest('hex');
    const bulk = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      const h = createHash('sha256');
      let sent = false;
      let received = false;
      // The digest of what came in follows the download, once both are complete.
      const finish = () => {
        if (sent && received) s.end(`${h.digest('hex')}\n`);
      };
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => {
        received = true;
        finish();
      });
      let i = 0;
      const pump = () => {
        while (i < size / (64 * 1024)) if (!s.write(pattern(i++))) return void s.once('drain', pump);
        s.write('\n');
        sent = true;
        finish();
      };
      pump();
    });
    await new Promise<void>((r) => bulk.listen(0, '127.0.0.1', r));
    const bport = (bulk.address() as { port: number }).port;
    await add({ port: bport });
    const { proxy, port } = await startProxy();
    try {
      const got = await new Promise<{ down: string; back: string }>((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        const h = createHash('sha256');
        let n = 0;
        let tail = '';
        s.on('data', (d: Buffer) => {
          if (n < size) {
            const take = Math.min(d.length, size - n);
            h.update(d.subarray(0, take));
            n += take;
            if (take < d.length) tail += d.subarray(take).toString();
            // Read slowly: pause now and then so the proxy must hold the backend back.
            if (n % (4 * 1024 * 1024) < d.length) {
              s.pause();
              setTimeout(() => s.resume(), 100);
            }
          } else tail += d.toString();
        });
        s.on('end', () => resolve({ down: h.digest('hex'), back: tail.trim() }));
        s.on('error', reject);
        // Upload the same pattern, then half-close.
        let i = 0;
        const up = () => {
          while (i < size / (64 * 1024)) if (!s.write(pattern(i++))) return void s.once('drain', up);
          s.end();
        };
        up();
      });
      expect(got.down).toBe(digest);
      expect(got.back).toBe(digest);
    } finally {
      await proxy.close();
      await new Promise<void>((r) => bulk.close(() => r()));
    }
  });

  describe('flotilla proxy (the command) following an agent API', () => {
    /** The CLI's main() from source, as `flotilla ARGS…` (stdout and stderr piped). */
    const spawnCli = (...args: string[]) => {
      const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
      const code = `const m = await import(${JSON.stringify(main)}); process.exitCode = await m.main(process.argv.slice(1));`;
      return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, '--', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    };
    let dir: string;
    let api: ApiServer;
    let child: ChildProcess | undefined;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'flotilla-proxy-cli-'));
      const services = new ServicesApi(registry, view);
      api = new ApiServer([(req) => services.route(req)]);
      await api.listen({ socketPath: join(dir, 'fleet.sock') });
    });
    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child!.once('exit', r));
      }
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('listens, routes, follows changes and stops on SIGTERM', async () => {
      const [a, b] = backends as [Backend, Backend];
      await add(a);
      const listen = await backend('probe'); // reserve a free port, then free it for the proxy
      const port = listen.port;
      await listen.close();
      child = spawnCli(
        `--endpoint=unix://${join(dir, 'fleet.sock')}`,
        'proxy',
        '--mode=userspace',
        `${service}=127.0.0.1:${port}`,
      );
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      await until(
        'proxy listening',
        () => stderr,
        (s) => s.includes('proxy: listening on'),
        20_000,
      );
      expect(await once(port)).toBe('a');
      await add(b);
      await remove(a);
      await until(
        'b via the command',
        () => once(port),
        (w) => w === 'b',
        2000,
      );
      const code = new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
      child.kill('SIGTERM');
      expect(await code).toBe(0);
      expect(stderr).toContain('proxy stopping');
    });

    it('exits 64 naming the problem for a bad listener spec or --mode', async () => {
      const run = async (...args: string[]) => {
        const p = spawnCli('proxy', ...args);
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const code = await new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
        return { code, err };
      };
      const bad = await run('Bad=127.0.0.1:1');
      expect(bad.code).toBe(64);
      expect(bad.err).toContain('invalid service name "Bad"');
      const mode = await run('--mode=fast', 'db=127.0.0.1:1');
      expect(mode.code).toBe(64);
      expect(mode.err).toContain('--mode: "fast" is not one of auto, kernel, userspace');
    });
  });
});
