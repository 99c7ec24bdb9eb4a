/**
 * The kernel data path's pure parts: the nft script (planNftScript), when route_localnet is needed,
 * and KernelForwarder's drain clock, coalescing and failure handling over a recording Netfilter.
 * The real nft/conntrack path is covered by test/integration/proxy-kernel.test.ts.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ServiceProxy } from '../../../src/proxy/proxy.js';
import {
  dropTableScript,
  KernelForwarder,
  removeKernelRules,
  needsRouteLocalnet,
  planNftScript,
  type Netfilter,
} from '../../../src/proxy/kernel.js';
import type { EndpointSource, EndpointSourceEvents } from '../../../src/discovery/services-view.js';
import type { ServiceEndpointRecord } from '../../../src/registry/types.js';
import { nullLogger, type Logger } from '../../../src/lib/log.js';

class RecordingNetfilter implements Netfilter {
  scripts: string[] = [];
  localnet = false;
  localnetWrites: boolean[] = [];
  failWith: string | undefined;
  probeResult: string | undefined;
  constructor(readonly local = new Set(['127.0.0.1', '10.0.0.5'])) {}
  probe() {
    return Promise.resolve(this.probeResult);
  }
  apply(script: string) {
    this.scripts.push(script);
    if (this.failWith && script.includes('chain')) {
      return Promise.reject(new Error(this.failWith));
    }
    return Promise.resolve();
  }
  localAddresses() {
    return this.local;
  }
  routeLocalnet() {
    return this.localnet;
  }
  owned = false;
  otherTables: string[] = [];
  setRouteLocalnet(on: boolean) {
    this.localnet = on;
    this.owned = on;
    this.localnetWrites.push(on);
  }
  routeLocalnetOwned() {
    return this.owned;
  }
  tables(prefix: string) {
    return Promise.resolve(this.otherTables.filter((t) => t.startsWith(prefix)));
  }
}

describe('planNftScript', () => {
  const base = { table: 'flotilla_proxy_t' };

  it('replaces the whole table in one transaction and DNATs each listener round-robin', () => {
    const s = planNftScript({
      ...base,
      listeners: [
        {
          host: '127.0.0.1',
          port: 15432,
          endpoints: [
            { ip: '10.0.0.7', port: 5432 },
            { ip: '10.0.0.8', port: 5432 },
          ],
        },
        { host: '0.0.0.0', port: 8080, endpoints: [{ ip: '127.0.0.1', port: 9000 }] },
      ],
    });
    expect(
      s.startsWith(
        'table ip flotilla_proxy_t {\n}\ndelete table ip flotilla_proxy_t\ntable ip flotilla_proxy_t {\n',
      ),
    ).toBe(true);
    expect(s).toContain('    ip daddr 127.0.0.1 tcp dport 15432 goto svc_0\n');
    expect(s).toContain('    fib daddr type local tcp dport 8080 goto svc_1\n');
    expect(s).toContain(
      'dnat ip addr . port to numgen inc mod 2 map { 0 : 10.0.0.7 . 5432, 1 : 10.0.0.8 . 5432 }',
    );
    expect(s).toContain('dnat ip addr . port to numgen inc mod 1 map { 0 : 127.0.0.1 . 9000 }');
    // Masquerade and counters only for flows whose original destination is one of our listeners.
    expect(s).toContain(
      'meta l4proto tcp ct status dnat ct original ip daddr 127.0.0.1 ct original proto-dst 15432 oifname != "lo" masquerade',
    );
    expect(s).toContain(
      'meta l4proto tcp ct status dnat ct original proto-dst 8080 oifname != "lo" masquerade',
    );
    expect(s).toContain('meta l4proto tcp counter dnat');
    expect(s).not.toContain('mark');
    // The guard is always there, so route_localnet is never on without it.
    expect(s).toContain('iifname != "lo" ip daddr 127.0.0.0/8 drop');
  });

  it('leaves a listener without endpoints out (the user-space listener refuses)', () => {
    const s = planNftScript({ ...base, listeners: [{ host: '127.0.0.1', port: 1, endpoints: [] }] });
    expect(s).not.toContain('goto svc_0');
    expect(s).not.toContain('chain svc_0');
  });

  it('resets unanswered connects to gone endpoints, and everything to cut ones, of this listener only', () => {
    const s = planNftScript({
      ...base,
      listeners: [
        {
          host: '127.0.0.1',
          port: 15432,
          endpoints: [],
          gone: [{ ip: '10.0.0.7', port: 5432 }],
          cut: [{ ip: '10.0.0.8', port: 5432 }],
        },
      ],
    });
    expect(s).toContain(
      'meta l4proto tcp ct status dnat ct original ip daddr 127.0.0.1 ct original proto-dst 15432 ct direction original ct state new ct reply ip saddr 10.0.0.7 ct reply proto-src 5432 reject with tcp reset',
    );
    expect(s).toContain(
      'meta l4proto tcp ct status dnat ct original ip daddr 127.0.0.1 ct original proto-dst 15432 ct direction original ct reply ip saddr 10.0.0.8 ct reply proto-src 5432 reject with tcp reset',
    );
    // no endpoint: no DNAT, no masquerade for it
    expect(s).not.toContain('goto svc_0');
    expect(s).not.toContain('masquerade');
  });

  it('refuses anything that is not an IPv4 address, a port or a plain table name', () => {
    const l = (ip: string, port = 80) => ({
      ...base,
      listeners: [{ host: '127.0.0.1', port: 1, endpoints: [{ ip, port }] }],
    });
    expect(() => planNftScript(l('10.0.0.1; flush ruleset'))).toThrow(
      /endpoint: "10.0.0.1; flush ruleset" is not an IPv4 address/,
    );
    expect(() => planNftScript(l('::1'))).toThrow(/not an IPv4 address/);
    expect(() => planNftScript(l('10.0.0.1', 70000))).toThrow(/70000 is not a port number/);
    expect(() => planNftScript({ ...base, table: 'x }; flush ruleset', listeners: [] })).toThrow(
      /invalid nft table name/,
    );
    expect(() =>
      planNftScript({ ...base, listeners: [{ host: 'localhost', port: 1, endpoints: [] }] }),
    ).toThrow(/listen address/);
    expect(() => dropTableScript('Bad-Name')).toThrow(/invalid nft table name/);
  });
});

describe('needsRouteLocalnet', () => {
  const local = new Set(['127.0.0.1', '10.0.0.5']);
  it('is needed only for a loopback or wildcard listener with an endpoint off this machine', () => {
    const l = (host: string, ip: string) => [{ host, port: 1, endpoints: [{ ip, port: 2 }] }];
    expect(needsRouteLocalnet(l('127.0.0.1', '10.0.0.9'), local)).toBe(true);
    expect(needsRouteLocalnet(l('0.0.0.0', '10.0.0.9'), local)).toBe(true);
    expect(needsRouteLocalnet(l('127.0.0.1', '10.0.0.5'), local)).toBe(false);
    expect(needsRouteLocalnet(l('127.0.0.1', '127.0.0.2'), local)).toBe(false);
    expect(needsRouteLocalnet(l('10.0.0.5', '10.0.0.9'), local)).toBe(false);
  });
});

describe('KernelForwarder', () => {
  function make(nf = new RecordingNetfilter(), drainTimeoutMs = 1000) {
    let t = 1_000_000;
    const fwd = new KernelForwarder({
      netfilter: nf,
      table: 'flotilla_proxy_t',
      log: nullLogger,
      drainTimeoutMs,
      cutKeepMs: 5000,
      now: () => t,
    });
    return { fwd, nf, advance: (ms: number) => (t += ms) };
  }
  const L = { ip: '127.0.0.1', port: 15432 };

  it('coalesces the changes of one tick into one apply', async () => {
    const { fwd, nf } = make();
    const a = fwd.set(L, [{ ip: '127.0.0.1', port: 1 }]);
    const b = fwd.set({ ip: '127.0.0.1', port: 15433 }, [{ ip: '127.0.0.1', port: 2 }]);
    await Promise.all([a, b]);
    expect(nf.scripts).toHaveLength(1);
    expect(nf.scripts[0]).toContain('goto svc_0');
    expect(nf.scripts[0]).toContain('goto svc_1');
  });

  const gone = (fwd: KernelForwarder, i = 0) => fwd.plan().listeners[i]!.gone;
  const cut = (fwd: KernelForwarder, i = 0) => fwd.plan().listeners[i]!.cut;

  it('moves a removed endpoint from gone to cut to forgotten on the drain clock', async () => {
    const { fwd, advance } = make();
    await fwd.set(L, [
      { ip: '127.0.0.1', port: 1 },
      { ip: '127.0.0.1', port: 2 },
    ]);
    await fwd.set(L, [{ ip: '127.0.0.1', port: 2 }]);
    expect(gone(fwd)).toEqual([{ ip: '127.0.0.1', port: 1 }]);
    expect(cut(fwd)).toEqual([]);
    advance(1000);
    expect(gone(fwd)).toEqual([]);
    expect(cut(fwd)).toEqual([{ ip: '127.0.0.1', port: 1 }]);
    advance(5000);
    expect(cut(fwd)).toEqual([]);
    // Coming back clears it at once.
    await fwd.set(L, [
      { ip: '127.0.0.1', port: 2 },
      { ip: '127.0.0.1', port: 3 },
    ]);
    await fwd.set(L, [{ ip: '127.0.0.1', port: 2 }]);
    await fwd.set(L, [
      { ip: '127.0.0.1', port: 2 },
      { ip: '127.0.0.1', port: 3 },
    ]);
    expect(gone(fwd)).toEqual([]);
    await fwd.close();
  });

  it('drains per listener: an endpoint another listener still uses drains only for the one that lost it', async () => {
    const { fwd } = make();
    const shared = { ip: '127.0.0.1', port: 7 };
    await fwd.set(L, [shared]);
    await fwd.set({ ip: '127.0.0.1', port: 2 }, [shared]);
    await fwd.set(L, []);
    expect(gone(fwd, 0)).toEqual([shared]);
    expect(gone(fwd, 1)).toEqual([]);
    expect(fwd.plan().listeners[1]!.endpoints).toEqual([shared]);
    await fwd.close();
  });

  it('leaves a record with a bad port out of the rules, with one warning, and keeps going', async () => {
    const warnings: string[] = [];
    const nf = new RecordingNetfilter();
    const fwd = new KernelForwarder({
      netfilter: nf,
      table: 'flotilla_proxy_t',
      log: { ...nullLogger, warn: (_f, m) => void warnings.push(m) },
      drainTimeoutMs: 1000,
    });
    const bad = [
      { ip: '127.0.0.1', port: 0 },
      { ip: '127.0.0.1', port: 5 },
    ];
    await fwd.set(L, bad);
    await fwd.set(L, bad);
    expect(fwd.failed).toBeUndefined();
    expect(fwd.plan().listeners[0]!.endpoints).toEqual([{ ip: '127.0.0.1', port: 5 }]);
    expect(warnings).toEqual(['proxy: endpoint record left out of the kernel rules']);
    expect(nf.scripts.at(-1)).toContain('map { 0 : 127.0.0.1 . 5 }');
  });

  it("never arms a timer beyond setTimeout's limit (a huge drain timeout)", async () => {
    const nf = new RecordingNetfilter();
    const fwd = new KernelForwarder({
      netfilter: nf,
      table: 'flotilla_proxy_t',
      log: nullLogger,
      drainTimeoutMs: 1e12,
    });
    await fwd.set(L, [{ ip: '127.0.0.1', port: 1 }]);
    await fwd.set(L, []);
    const n = nf.scripts.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(nf.scripts.length).toBe(n);
    await fwd.close();
  });

  it('sets route_localnet for an off-machine endpoint after the guarded table is in force, and puts it back on close', async () => {
    const { fwd, nf } = make();
    let guardedFirst = false;
    const set = nf.setRouteLocalnet.bind(nf);
    nf.setRouteLocalnet = (on: boolean) => {
      if (on) guardedFirst = nf.scripts.at(-1)?.includes('ip daddr 127.0.0.0/8 drop') ?? false;
      set(on);
    };
    await fwd.set(L, [{ ip: '10.0.0.9', port: 5432 }]);
    expect(nf.localnetWrites).toEqual([true]);
    expect(guardedFirst).toBe(true);
    await fwd.close();
    expect(nf.localnetWrites).toEqual([true, false]);
    expect(nf.scripts.at(-1)).toBe(dropTableScript('flotilla_proxy_t'));
  });

  it('a restarted proxy puts back the route_localnet its previous run set; not while another proxy runs', async () => {
    const nf = new RecordingNetfilter();
    const first = make(nf).fwd;
    await first.set(L, [{ ip: '10.0.0.9', port: 5432 }]);
    await first.detach(); // agent restart: rules and setting stay
    expect(nf.localnetWrites).toEqual([true]);
    const second = make(nf).fwd;
    await second.set(L, [{ ip: '10.0.0.9', port: 5432 }]);
    nf.otherTables = ['flotilla_proxy_other'];
    await second.close();
    expect(nf.localnetWrites).toEqual([true]); // the other proxy may need it
    const third = make(nf).fwd;
    nf.otherTables = [];
    await third.close();
    expect(nf.localnetWrites).toEqual([true, false]);
  });

  it('leaves route_localnet alone when it was already on', async () => {
    const nf = new RecordingNetfilter();
    nf.localnet = true;
    const { fwd } = make(nf);
    await fwd.set(L, [{ ip: '10.0.0.9', port: 5432 }]);
    await fwd.close();
    expect(nf.localnetWrites).toEqual([]);
  });

  it('on a failed apply drops the table and stops (user space takes everything)', async () => {
    const nf = new RecordingNetfilter();
    nf.failWith = 'Error: Could not process rule: Operation not supported';
    const warnings: string[] = [];
    const log: Logger = { ...nullLogger, warn: (_f, m) => void warnings.push(m) };
    const fwd = new KernelForwarder({ netfilter: nf, table: 'flotilla_proxy_t', log, drainTimeoutMs: 1000 });
    await fwd.set(L, [{ ip: '127.0.0.1', port: 1 }]);
    expect(fwd.failed?.message).toMatch(/Operation not supported/);
    expect(nf.scripts.at(-1)).toBe(dropTableScript('flotilla_proxy_t'));
    expect(warnings).toEqual([
      'proxy: cannot apply the kernel rules; every connection now goes through user space',
    ]);
    const n = nf.scripts.length;
    await fwd.set(L, [{ ip: '127.0.0.1', port: 2 }]);
    expect(nf.scripts.length).toBe(n);
  });
});

class Source extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
  constructor(private readonly list: ServiceEndpointRecord[]) {
    super();
  }
  endpoints(s: string) {
    return this.list.filter((e) => e.service === s);
  }
  services() {
    return [...new Set(this.list.map((e) => e.service))];
  }
}

describe('ServiceProxy data path choice', () => {
  const source = () =>
    new Source([
      {
        service: 'db',
        machineID: 'm',
        ip: '127.0.0.1',
        port: 9,
        container: 'c',
        health: 'none',
        registered: 0,
      },
    ]);
  const listen = () => [{ service: 'db', host: '127.0.0.1', port: 0 }];

  it('auto falls back to user space, saying why, when nft cannot be used', async () => {
    const nf = new RecordingNetfilter();
    nf.probeResult = 'nft (package nftables) is not installed';
    const infos: string[] = [];
    const log: Logger = { ...nullLogger, info: (_f, m) => void infos.push(m) };
    const p = new ServiceProxy({ listen: listen(), source: source(), log, netfilter: nf });
    await p.start();
    expect(p.mode).toBe('userspace');
    expect(
      infos.some((m) => /\(userspace data path: nft \(package nftables\) is not installed\)$/.test(m)),
    ).toBe(true);
    expect(p.stats()[0]!.mode).toBe('userspace');
    expect(nf.scripts).toEqual([]);
    await p.close();
  });

  it('kernel refuses to start when nft cannot be used', async () => {
    const nf = new RecordingNetfilter();
    nf.probeResult = 'not running as root';
    const p = new ServiceProxy({
      listen: listen(),
      source: source(),
      log: nullLogger,
      netfilter: nf,
      mode: 'kernel',
    });
    await expect(p.start()).rejects.toThrow('proxy mode kernel: not running as root');
  });

  it('auto uses the kernel path when it can, and userspace never calls nft', async () => {
    const nf = new RecordingNetfilter();
    const p = new ServiceProxy({ listen: listen(), source: source(), log: nullLogger, netfilter: nf });
    await p.start();
    expect(p.mode).toBe('kernel');
    expect(p.stats()[0]!.mode).toBe('kernel');
    expect(nf.scripts[0]).toMatch(/^table ip flotilla_proxy_[0-9a-f]{10} \{/);
    expect(nf.scripts[0]).toContain('map { 0 : 127.0.0.1 . 9 }');
    await p.close();
    const nf2 = new RecordingNetfilter();
    const q = new ServiceProxy({
      listen: listen(),
      source: source(),
      log: nullLogger,
      netfilter: nf2,
      mode: 'userspace',
    });
    await q.start();
    expect(q.mode).toBe('userspace');
    await q.close();
    expect(nf2.scripts).toEqual([]);
  });

  it('a failed first apply leaves the proxy in user space', async () => {
    const nf = new RecordingNetfilter();
    nf.failWith = 'Error: no such file or directory';
    const p = new ServiceProxy({ listen: listen(), source: source(), log: nullLogger, netfilter: nf });
    await p.start();
    expect(p.mode).toBe('userspace');
    expect(p.modeReason).toMatch(/no such file/);
    expect(p.stats()[0]!.mode).toBe('userspace');
    await p.close();
  });
});

describe('KernelForwarder when an apply fails after it set route_localnet', () => {
  it('drops the table and puts route_localnet back', async () => {
    const nf = new RecordingNetfilter();
    const fwd = new KernelForwarder({
      netfilter: nf,
      table: 'flotilla_proxy_t',
      log: nullLogger,
      drainTimeoutMs: 1000,
    });
    await fwd.set({ ip: '127.0.0.1', port: 15432 }, [{ ip: '10.0.0.9', port: 5432 }]);
    expect(nf.localnet).toBe(true);
    nf.failWith = 'Error: Could not process rule: No buffer space available';
    await fwd.set({ ip: '127.0.0.1', port: 15432 }, [{ ip: '10.0.0.8', port: 5432 }]);
    expect(fwd.failed).toBeDefined();
    expect(nf.scripts.at(-1)).toBe(dropTableScript('flotilla_proxy_t'));
    expect(nf.localnet).toBe(false);
    expect(nf.localnetWrites).toEqual([true, false]);
  });
});

describe('KernelForwarder without a writable route_localnet', () => {
  it('falls back to user space with a message that says what to do', async () => {
    const nf = new RecordingNetfilter();
    nf.setRouteLocalnet = () => {
      throw new Error("EROFS: read-only file system, open '/proc/sys/net/ipv4/conf/all/route_localnet'");
    };
    const fwd = new KernelForwarder({
      netfilter: nf,
      table: 'flotilla_proxy_t',
      log: nullLogger,
      drainTimeoutMs: 1000,
    });
    await fwd.set({ ip: '127.0.0.1', port: 15432 }, [{ ip: '10.0.0.9', port: 5432 }]);
    expect(fwd.failed?.message).toMatch(
      /^cannot set net\.ipv4\.conf\.all\.route_localnet=1 \(EROFS.*\): a loopback listener with endpoints on other machines needs it; set it at boot \(sysctl\.d\) or use proxy_mode=userspace$/,
    );
    // the table went in (guard first), then came out again when the sysctl could not be set
    expect(nf.scripts).toHaveLength(2);
    expect(nf.scripts.at(-1)).toBe(dropTableScript('flotilla_proxy_t'));
  });
});

describe('removeKernelRules (an agent starting without the kernel path)', () => {
  it('drops the table and puts back a route_localnet a flotilla proxy set, unless another proxy table remains', async () => {
    const nf = new RecordingNetfilter();
    nf.setRouteLocalnet(true); // the previous run
    nf.localnetWrites = [];
    nf.otherTables = ['flotilla_proxy_agent', 'flotilla_proxy_0123456789'];
    await removeKernelRules(nf, 'flotilla_proxy_agent', nullLogger);
    expect(nf.scripts).toEqual([dropTableScript('flotilla_proxy_agent')]);
    expect(nf.localnetWrites).toEqual([]);
    nf.otherTables = ['flotilla_proxy_agent'];
    await removeKernelRules(nf, 'flotilla_proxy_agent', nullLogger);
    expect(nf.localnetWrites).toEqual([false]);
  });

  it('leaves a route_localnet that no flotilla proxy set', async () => {
    const nf = new RecordingNetfilter();
    nf.localnet = true;
    await removeKernelRules(nf, 'flotilla_proxy_agent', nullLogger);
    expect(nf.localnetWrites).toEqual([]);
  });
});
