/**
 * Liveness probing: the pure tracker's rules, the probe over real loopback sockets, and the monitor's
 * choice of targets and revocations (with an injected probe and clock). A *silent* machine (connects
 * that time out) cannot be made on loopback without touching the firewall; the power-cut suites on
 * the test machines cover it (test/integration/cluster-failover.test.ts).
 */
import type { Server } from 'node:net';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LivenessMonitor,
  LivenessTracker,
  probeMachine,
  serveLiveness,
  type ProbeResult,
} from '../../../src/agent/liveness.js';
import type { MachineRecord } from '../../../src/registry/types.js';

const t = (id: string, lease = `L-${id}`) => ({ id, lease, ip: '127.0.0.1', port: 1 });

describe('LivenessTracker', () => {
  it('revokes an armed machine once it has been silent longer than the timeout, once', () => {
    const tr = new LivenessTracker(2000);
    tr.setTargets([t('a'), t('b'), t('c'), t('d')], 0);
    for (const id of ['a', 'b', 'c', 'd']) tr.observe(id, 'ok', 100);
    expect(tr.due(2000, 5)).toEqual([]);
    tr.observe('b', 'ok', 1500);
    tr.observe('c', 'ok', 1500);
    tr.observe('d', 'refused', 1500); // the host is up, its agent restarting: still alive
    expect(tr.due(2100, 5)).toEqual([]);
    const due = tr.due(2101, 5);
    expect(due).toEqual([{ id: 'a', lease: 'L-a', reason: 'no answer from machine a for 2.0 s' }]);
    expect(tr.due(5000, 9).map((r) => r.id)).toEqual(['b', 'c', 'd']); // a is not revoked twice
  });

  it('never revokes a machine that has not answered since its registration', () => {
    const tr = new LivenessTracker(2000);
    tr.setTargets([t('a')], 0);
    tr.observe('a', 'refused', 10); // refused proves the host, but the responder never answered
    expect(tr.due(60_000, 3)).toEqual([]);
  });

  it('a new lease (re-registration) starts unarmed; a retry re-judges a failed revocation', () => {
    const tr = new LivenessTracker(1000);
    tr.setTargets([t('a')], 0);
    tr.observe('a', 'ok', 0);
    expect(tr.due(1001, 3).map((r) => r.id)).toEqual(['a']);
    tr.retry('a');
    expect(tr.due(1002, 3).map((r) => r.id)).toEqual(['a']);
    tr.setTargets([t('a', 'L-a2')], 1100);
    expect(tr.due(9999, 3)).toEqual([]);
  });

  it('revokes nothing when more than a minority of the cluster is silent at once', () => {
    const tr = new LivenessTracker(1000);
    tr.setTargets([t('a'), t('b')], 0);
    tr.observe('a', 'ok', 0);
    tr.observe('b', 'ok', 0);
    expect(tr.due(1001, 3)).toEqual([]); // 2 of 3 silent: the prober is the odd one out
    expect(tr.silentCount(1001)).toBe(2);
    tr.observe('b', 'ok', 1001);
    expect(tr.due(1002, 3).map((r) => r.id)).toEqual(['a']);
  });
});

describe('probeMachine over loopback', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });
  const port = (s: Server) => (s.address() as { port: number }).port;

  it('ok from the responder with the right machine ID, refused otherwise', async () => {
    const s = await serveLiveness('abc123', '127.0.0.1', 0);
    servers.push(s);
    expect(await probeMachine('127.0.0.1', port(s), 'abc123', 1000)).toBe('ok');
    expect(await probeMachine('127.0.0.1', port(s), 'other', 1000)).toBe('refused');
  });

  it('a closed port is refused (host up), a silent peer that accepts but says nothing is too', async () => {
    const mute = createServer(() => undefined);
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    servers.push(mute);
    const p = port(mute);
    expect(await probeMachine('127.0.0.1', p, 'x', 200)).toBe('refused');
    await new Promise((r) => mute.close(r));
    servers.pop();
    expect(await probeMachine('127.0.0.1', p, 'x', 1000)).toBe('refused');
  });
});

describe('serveLiveness bounds', () => {
  const servers: Server[] = [];
  const clients: Socket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A client that connects and then never reads, writes or closes. */
  const hold = (p: number) =>
    new Promise<Socket>((resolve, reject) => {
      const c = connect({ host: '127.0.0.1', port: p, allowHalfOpen: true });
      c.pause();
      c.on('error', () => undefined);
      c.once('connect', () => resolve(c));
      c.once('error', reject);
      clients.push(c);
    });

  it('clients that never close fill the cap, and are dropped after the idle timeout so probes answer again', async () => {
    const s = await serveLiveness('abc123', '127.0.0.1', 0, { maxConnections: 8, idleTimeoutMs: 300 });
    servers.push(s);
    const p = (s.address() as { port: number }).port;
    await Promise.all(Array.from({ length: 8 }, () => hold(p)));
    const open = () => new Promise<number>((r, j) => s.getConnections((e, n) => (e ? j(e) : r(n))));
    // A client's connect completes before the server has accepted it: wait for all 8 accepts.
    for (let i = 0; i < 100 && (await open()) < 8; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await open()).toBe(8);
    const t0 = performance.now();
    // The cap is full: a probe gets its connect closed without the line (the host is up).
    expect(await probeMachine('127.0.0.1', p, 'abc123', 1000)).toBe('refused');
    while ((await open()) > 0 && performance.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    const freedMs = performance.now() - t0;
    expect(await open(), 'held connections dropped by the idle timeout').toBe(0);
    expect(freedMs).toBeLessThan(2000);
    expect(await probeMachine('127.0.0.1', p, 'abc123', 1000)).toBe('ok');
  });

  it('without an idle timeout the held slots would stay taken (the check above can fail)', async () => {
    const s = await serveLiveness('abc123', '127.0.0.1', 0, { maxConnections: 4, idleTimeoutMs: 60_000 });
    servers.push(s);
    const p = (s.address() as { port: number }).port;
    await Promise.all(Array.from({ length: 4 }, () => hold(p)));
    await new Promise((r) => setTimeout(r, 600));
    expect(await probeMachine('127.0.0.1', p, 'abc123', 1000)).toBe('refused');
  });
});

describe('LivenessMonitor', () => {
  const machine = (id: string, extra: Partial<MachineRecord> = {}): MachineRecord => ({
    id,
    publicIP: `10.0.0.${id.charCodeAt(0)}`,
    metadata: {},
    version: 't',
    lease: `L-${id}`,
    livenessPort: 54730,
    ...extra,
  });

  function setup(opts: { leader: string; me: string; silent: Set<string>; renewedAgo?: number }) {
    let now = 1_000_000;
    const probed: string[] = [];
    const revoked: string[] = [];
    const probe = (_ip: string, _port: number, id: string): Promise<ProbeResult> => {
      probed.push(id);
      return Promise.resolve(opts.silent.has(id) ? 'silent' : 'ok');
    };
    const machines = [
      machine('a'),
      machine('b'),
      machine('c'),
      machine('d', { livenessPort: 0 }),
      machine('e'),
    ];
    const mon = new LivenessMonitor({
      machineID: opts.me,
      machines: () => machines,
      leader: () => opts.leader,
      isLeader: () => opts.leader === opts.me,
      lastRenewed: () => now - (opts.renewedAgo ?? 0),
      evict: (v) => {
        revoked.push(v.lease);
        return Promise.resolve(true);
      },
      log: { info: () => undefined, warn: () => undefined, debug: () => undefined, error: () => undefined },
      timeoutMs: 2000,
      intervalMs: 500,
      ttlMs: 3000,
      probe,
      clock: { now: () => now },
    });
    return {
      mon,
      probed,
      revoked,
      advance: async (ms: number) => {
        now += ms;
        await mon.tick();
      },
    };
  }

  it('the engine leader probes every other machine that has a responder and revokes a silent one', async () => {
    const silent = new Set<string>();
    const s = setup({ leader: 'a', me: 'a', silent });
    await s.advance(0);
    expect(s.probed.sort()).toEqual(['b', 'c', 'e']);
    silent.add('c');
    for (let i = 0; i < 4; i++) await s.advance(500);
    expect(s.revoked).toEqual([]);
    await s.advance(500);
    expect(s.revoked).toEqual(['L-c']);
    expect(s.mon.revoked[0]?.reason).toMatch(/no answer from machine c for 2\.5 s/);
  });

  it('other machines probe only the engine leader, and revoke it when it goes silent', async () => {
    const silent = new Set<string>();
    const s = setup({ leader: 'a', me: 'b', silent });
    await s.advance(0);
    expect(s.probed).toEqual(['a']);
    silent.add('a');
    for (let i = 0; i < 6; i++) await s.advance(500);
    expect(s.revoked).toEqual(['L-a']);
  });

  it('a prober whose own lease is stale (cut off from the registry) revokes nothing', async () => {
    const silent = new Set<string>();
    const s = setup({ leader: 'a', me: 'a', silent, renewedAgo: 5000 });
    await s.advance(0);
    silent.add('c');
    for (let i = 0; i < 10; i++) await s.advance(500);
    expect(s.revoked).toEqual([]);
  });
});
