import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FenceMonitor, tcpAnswers } from '../../../src/agent/fence.js';

describe('FenceMonitor', () => {
  const make = (answers: Record<string, boolean>, lastRenewed: number, now: number) => {
    const calls: boolean[] = [];
    const m = new FenceMonitor({
      ttlMs: 3000,
      lastRenewed: () => lastRenewed,
      endpoints: [
        'http://10.0.0.11:2379',
        'http://10.0.0.12:2379',
        'http://10.0.0.13:2379',
        'http://127.0.0.1:2379',
      ],
      ownAddresses: new Set(['10.0.0.13']),
      setFenced: (on) => calls.push(on),
      now: () => now,
      probe: (host) => Promise.resolve(answers[host] ?? false),
    });
    return { m, calls };
  };

  it('does not fence while the lease is fresh, even if nothing answers', async () => {
    const { m, calls } = make({}, 10_000, 12_000);
    expect(await m.check()).toBe(false);
    expect(calls).toEqual([]);
  });

  it('fences a partitioned machine once its lease must have expired', async () => {
    const { m, calls } = make({ '10.0.0.13': true }, 10_000, 13_500); // only itself answers
    expect(await m.check()).toBe(true);
    expect(calls).toEqual([true]);
  });

  it('does not fence in a whole-cluster etcd outage (peers refuse: the network works)', async () => {
    const { m } = make({ '10.0.0.11': true }, 10_000, 20_000);
    expect(await m.check()).toBe(false);
  });

  it('ignores its own and loopback endpoints, and never starts without remote ones', () => {
    const m = new FenceMonitor({
      ttlMs: 1000,
      lastRenewed: () => 0,
      endpoints: ['http://127.0.0.1:2379'],
      ownAddresses: new Set(),
      setFenced: () => {
        throw new Error('must not fence');
      },
    });
    m.start();
    m.stop();
  });
});

describe('tcpAnswers', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  // Silence (a partition) is covered on the test machines (test/integration/cluster-*): no address
  // outside loopback may be probed from here.
  it('is true for a listening port and for a refused one', async () => {
    server = createServer();
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    expect(await tcpAnswers('127.0.0.1', port, 1000)).toBe(true);
    const closed = await new Promise<number>((r) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    expect(await tcpAnswers('127.0.0.1', closed, 1000)).toBe(true); // refused = reachable
  });
});
