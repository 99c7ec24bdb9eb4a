/**
 * The service proxy's limits, over real TCP sockets on loopback (user-space data path, in process):
 *   - at most `maxConnections` client connections per listener: the next one is reset, with a log
 *     line naming the limit, and a freed slot is usable again;
 *   - a connection on which nothing moves for `idleTimeoutMs` is closed (both sides), with a log
 *     line; one that keeps talking is kept;
 *   - a client that stops reading while its endpoint sends (and an endpoint that stops reading
 *     while its client sends) does not grow the proxy's buffers past a bound.
 * The endpoint list comes from a fixed EndpointSource (the interface the registry view implements);
 * everything else is real.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { EndpointSource, EndpointSourceEvents } from '../../../src/discovery/services-view.js';
import type { Logger } from '../../../src/lib/log.js';
import { ServiceProxy } from '../../../src/proxy/proxy.js';
import type { ServiceEndpointRecord } from '../../../src/registry/types.js';

class FixedSource extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
  constructor(private readonly list: ServiceEndpointRecord[]) {
    super();
  }
  endpoints(service: string): ServiceEndpointRecord[] {
    return this.list.filter((e) => e.service === service);
  }
  services(): string[] {
    return [...new Set(this.list.map((e) => e.service))];
  }
}

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

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** An endpoint: echo (default), or a custom connection handler. */
async function endpoint(onConn?: (s: Socket) => void): Promise<{ port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (onConn) onConn(s);
    else s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as { port: number }).port, sockets };
}

async function proxyTo(
  port: number,
  opts: { maxConnections?: number; idleTimeoutMs?: number },
): Promise<{ proxy: ServiceProxy; port: number; log: ReturnType<typeof recorder> }> {
  const log = recorder();
  const proxy = new ServiceProxy({
    listen: [{ service: 'web', host: '127.0.0.1', port: 0 }],
    source: new FixedSource([
      {
        service: 'web',
        machineID: 'm1',
        ip: '127.0.0.1',
        port,
        container: 'web-1',
        health: 'none',
        registered: 1,
      },
    ]),
    log,
    mode: 'userspace',
    ...opts,
  });
  await proxy.start();
  closers.push(() => proxy.close());
  const addr = proxy.addresses()[0]!.address;
  return { proxy, port: Number(addr.slice(addr.lastIndexOf(':') + 1)), log };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
    closers.push(() => void s.destroy());
  });
}

/** A connection attempt, not waited for (a reset may come before or after the connect). */
function dial(port: number): Socket {
  const s = connect(port, '127.0.0.1');
  closers.push(() => void s.destroy());
  return s;
}

/** Write a line and wait for the echo. */
function echo(s: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onClose = () => reject(new Error(`closed before the echo of ${JSON.stringify(text)}`));
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        s.off('data', onData);
        s.off('close', onClose);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.once('close', onClose);
    s.write(text);
  });
}

/** Resolves with how the socket ended: 'reset', 'closed', or 'open' if still open after ms. */
function ending(s: Socket, ms: number): Promise<'reset' | 'closed' | 'open'> {
  return new Promise((resolve) => {
    let reset = false;
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') reset = true;
    });
    s.on('data', () => undefined);
    const t = setTimeout(() => resolve('open'), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(reset ? 'reset' : 'closed');
    });
  });
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('proxy connection cap (proxy_max_connections)', () => {
  it('holds N connections; the N+1-th is reset with a log line; a freed slot serves again', async () => {
    const ep = await endpoint();
    const { proxy, port, log } = await proxyTo(ep.port, { maxConnections: 3 });
    const held = [await open(port), await open(port), await open(port)];
    for (const [i, s] of held.entries()) expect(await echo(s, `hello ${i}\n`)).toBe(`hello ${i}\n`);
    expect(proxy.stats()[0]!.clients).toBe(3);

    expect(await ending(dial(port), 5000)).toBe('reset');
    const st = proxy.stats()[0]!;
    expect(st.overLimit).toBe(1);
    expect(st.clients).toBe(3);
    const line = log.lines.find((l) => l.msg.includes('connection limit 3 reached'));
    expect(line, JSON.stringify(log.lines)).toBeDefined();
    expect(line!.level).toBe('warn');
    expect(line!.fields.service).toBe('web');
    // The held ones still work.
    expect(await echo(held[1]!, 'still here\n')).toBe('still here\n');

    // One closes: the next connection gets its slot.
    held[0]!.destroy();
    await until('the slot to be freed', () => proxy.stats()[0]!.clients === 2);
    const next = await open(port);
    expect(await echo(next, 'in again\n')).toBe('in again\n');
    expect(proxy.stats()[0]!.overLimit).toBe(1);
  });

  it('counts connections still connecting to the endpoint against the cap', async () => {
    // An endpoint that accepts and never answers: the clients are piped, then sit there.
    const ep = await endpoint(() => undefined);
    const { proxy, port } = await proxyTo(ep.port, { maxConnections: 2 });
    await open(port);
    await open(port);
    await until('2 clients', () => proxy.stats()[0]!.clients === 2);
    expect(await ending(dial(port), 5000)).toBe('reset');
    expect(ep.sockets.size).toBe(2);
  });
});

describe('proxy idle timeout (proxy_idle_timeout)', () => {
  it('closes an idle connection after the timeout, both sides, with a log line; keeps an active one', async () => {
    const ep = await endpoint();
    const { proxy, port, log } = await proxyTo(ep.port, { idleTimeoutMs: 800 });
    const idle = await open(port);
    const active = await open(port);
    expect(await echo(idle, 'once\n')).toBe('once\n');
    expect(await echo(active, 'first\n')).toBe('first\n');
    await until('2 endpoint connections', () => ep.sockets.size === 2);

    const idleEnd = ending(idle, 15_000);
    const t0 = Date.now();
    // The active one talks every 200 ms (well inside 800 ms) for 2.4 s: three idle periods.
    let talks = 0;
    while (Date.now() - t0 < 2400) {
      expect(await echo(active, `ping ${talks}\n`)).toBe(`ping ${talks}\n`);
      talks++;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await idleEnd).toBe('closed');
    expect(active.destroyed).toBe(false);
    expect(await echo(active, 'after\n')).toBe('after\n');
    // The endpoint side of the idle one was closed too: one endpoint connection is left.
    await until('the idle pair to be gone at the endpoint', () => ep.sockets.size === 1);
    const st = proxy.stats()[0]!;
    expect(st.idleClosed).toBe(1);
    expect(st.clients).toBe(1);
    const line = log.lines.find((l) => l.msg.includes('idle for 800 ms'));
    expect(line, JSON.stringify(log.lines)).toBeDefined();
    expect(line!.fields.service).toBe('web');
  }, 30_000);

  it('a connection still connecting is not cut by the idle timeout while it is shorter than the connect timeout', async () => {
    // Not an idle period: the pair does not exist yet. The connect timeout (2 s default) rules.
    const ep = await endpoint();
    const { proxy, port } = await proxyTo(ep.port, { idleTimeoutMs: 1000 });
    const s = await open(port);
    expect(await echo(s, 'x\n')).toBe('x\n');
    expect(proxy.stats()[0]!.idleClosed).toBe(0);
  });
});

describe('proxy memory per connection', () => {
  const MiB = 1024 * 1024;

  it('a client that stops reading while its endpoint sends 64 MiB: the proxy buffers a bounded amount', async () => {
    let pushed = 0;
    let blockedAt = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const ep = await endpoint((s) => {
      // Send as fast as the proxy takes it, up to 64 MiB.
      const more = () => {
        while (pushed < 64 * MiB) {
          pushed += chunk.length;
          if (!s.write(chunk)) {
            blockedAt = pushed;
            s.once('drain', more);
            return;
          }
        }
      };
      more();
    });
    const { proxy, port } = await proxyTo(ep.port, {});
    const c = await open(port);
    c.pause(); // never reads
    c.write('go\n');
    // Wait until the endpoint is held back (the proxy stopped reading from it) and stays so.
    await until('the endpoint to be blocked', () => blockedAt > 0, 20_000);
    let maxBuffered = 0;
    let lastPushed = -1;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      maxBuffered = Math.max(maxBuffered, proxy.stats()[0]!.buffered);
      lastPushed = pushed;
    }
    await new Promise((r) => setTimeout(r, 300));
    // The endpoint made no progress in the last 300 ms: nothing more is taken from it.
    expect(pushed).toBe(lastPushed);
    expect(pushed).toBeLessThan(64 * MiB);
    // 16 KiB high-water mark plus one read of at most 512 KiB (plus a chunk in flight).
    expect(maxBuffered).toBeLessThanOrEqual(1 * MiB);
    console.log(
      `[proxy-memory] stalled reader: endpoint pushed ${(pushed / MiB).toFixed(1)} MiB before it was held back; proxy buffered at most ${(maxBuffered / 1024).toFixed(0)} KiB`,
    );
    // Reading again drains everything that was held back, in order.
    let got = 0;
    c.on('data', (d: Buffer) => (got += d.length));
    c.resume();
    await until('all 64 MiB to arrive', () => got === 64 * MiB, 60_000);
  }, 90_000);

  it('an endpoint that stops reading while its client sends: the proxy stops reading the client', async () => {
    const ep = await endpoint((s) => s.pause());
    const { proxy, port } = await proxyTo(ep.port, {});
    const c = await open(port);
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let sent = 0;
    // Keep writing as the socket drains; blocked = no drain for 500 ms (kernel and proxy push back).
    let lastDrain = Date.now();
    const more = () => {
      lastDrain = Date.now();
      while (sent < 64 * MiB) {
        sent += chunk.length;
        if (!c.write(chunk)) {
          c.once('drain', more);
          return;
        }
      }
    };
    more();
    await until('the client to be held back', () => Date.now() - lastDrain > 500, 30_000);
    await until('the pair to exist', () => proxy.stats()[0]!.active === 1);
    let maxBuffered = 0;
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      maxBuffered = Math.max(maxBuffered, proxy.stats()[0]!.buffered);
    }
    expect(sent).toBeLessThan(64 * MiB);
    expect(c.writableLength).toBeGreaterThan(0); // the client's own buffer holds the rest
    expect(maxBuffered).toBeLessThanOrEqual(1 * MiB);
    console.log(
      `[proxy-memory] stalled endpoint: client queued ${(c.writableLength / MiB).toFixed(1)} MiB on its side; proxy buffered at most ${(maxBuffered / 1024).toFixed(0)} KiB`,
    );
  }, 60_000);
});
