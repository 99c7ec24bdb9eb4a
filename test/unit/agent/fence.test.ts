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
      clock: { now: () => now },
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

describe('FenceMonitor with only the local etcd member configured (CoreOS layout)', () => {
  // etcd_servers=http://127.0.0.1:2379: the etcd endpoints give nothing to probe; the peers'
  // liveness responders from the machine list do.
  const make = (answers: Record<string, boolean>, lastRenewed: number, now: number, peers = true) => {
    const calls: boolean[] = [];
    const probed: string[] = [];
    const m = new FenceMonitor({
      ttlMs: 3000,
      lastRenewed: () => lastRenewed,
      endpoints: ['http://127.0.0.1:2379'],
      ownAddresses: new Set(['10.0.0.13']),
      peers: () =>
        peers
          ? [
              { host: '10.0.0.11', port: 7946 },
              { host: '10.0.0.12', port: 7946 },
            ]
          : [],
      setFenced: (on) => calls.push(on),
      clock: { now: () => now },
      probe: (host, port) => {
        probed.push(`${host}:${port}`);
        return Promise.resolve(answers[host] ?? false);
      },
    });
    return { m, calls, probed };
  };

  it('fences when no peer machine answers while its presence is unconfirmed (a partition)', async () => {
    const { m, calls, probed } = make({}, 10_000, 13_500);
    expect(await m.check()).toBe(true);
    expect(calls).toEqual([true]);
    expect(probed.sort()).toEqual(['10.0.0.11:7946', '10.0.0.12:7946']);
  });

  it('does not fence in a cluster-wide etcd outage: the peer machines still answer', async () => {
    const { m, calls } = make({ '10.0.0.12': true }, 10_000, 60_000);
    expect(await m.check()).toBe(false);
    expect(calls).toEqual([]);
  });

  it('does not fence while its presence is confirmed, and lifts the fence when it is again', async () => {
    let renewed = 10_000;
    const calls: boolean[] = [];
    const m = new FenceMonitor({
      ttlMs: 3000,
      lastRenewed: () => renewed,
      endpoints: ['http://127.0.0.1:2379'],
      ownAddresses: new Set(),
      peers: () => [{ host: '10.0.0.11', port: 7946 }],
      setFenced: (on) => calls.push(on),
      clock: { now: () => 14_000 },
      probe: () => Promise.resolve(false),
    });
    expect(await m.check()).toBe(true);
    renewed = 13_900;
    expect(await m.check()).toBe(false);
    expect(calls).toEqual([true, false]);
  });

  it('never fences a machine that knows no peer at all (a one-machine cluster)', async () => {
    const { m, calls } = make({}, 0, 60_000, false);
    expect(await m.check()).toBe(false);
    expect(calls).toEqual([]);
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
