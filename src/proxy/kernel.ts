/**
 * The proxy's kernel data path: nftables DNAT for connections made on this machine, so the bytes of
 * a proxied connection never pass through user space (the same trade kube-proxy's iptables mode and
 * Docker's `userland-proxy=false` make). The user-space listener (proxy.ts) stays bound on every
 * address and takes whatever the kernel path does not: connections from other hosts, IPv6, a
 * service with no endpoint (refused there, with its log line), and any connection made while rules
 * are being replaced.
 *
 * What the kernel path does, per listener HOST:PORT (HOST an IPv4 address, or 0.0.0.0 for every local
 * address) with at least one usable IPv4 endpoint:
 *   - a new connection from this machine to HOST:PORT is DNATed to one endpoint, round-robin
 *     (`numgen inc`); the kernel keeps the mapping for the connection's life (conntrack).
 *   - an endpoint that leaves: new connections go elsewhere at once (the rules are replaced in one
 *     nft transaction); its established connections drain for `drainTimeoutMs`, then every further
 *     packet of theirs is answered with a TCP reset; a connection still waiting for its SYN-ACK from
 *     the removed endpoint is reset at once instead of hanging on SYN retries.
 *   - a flow leaving through a real interface is masqueraded (its source may be 127.0.0.1). When a
 *     loopback or wildcard listener has an endpoint on another machine, the kernel must route a
 *     127.0.0.1 source off the host: `net.ipv4.conf.all.route_localnet` is set to 1 (and put back on
 *     close), with the rule kube-proxy added for CVE-2020-8558: packets for 127.0.0.0/8 that arrive
 *     on anything but `lo` are dropped.
 *
 * Everything lives in one table of our own (`ip <table>`), replaced whole in a single atomic nft
 * transaction on every change; nothing else in the host's ruleset is touched. Rules are built only
 * from validated values (IPv4 literals, port numbers, a fixed-alphabet table name) and handed to
 * `nft -f -` on stdin: no shell, no user text.
 *
 * The nft script is built by the pure `planNftScript`; `KernelForwarder` keeps the drain clock and
 * applies scripts through the small `Netfilter` port (`NftNetfilter` runs the real `nft`).
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../lib/log.js';
import { HOST_PATHS } from '../lib/paths.js';

export interface Addr {
  ip: string;
  port: number;
}

export interface KernelListener {
  /** Listen address: an IPv4 address, or 0.0.0.0 (every local address). */
  host: string;
  port: number;
  /** Usable endpoints, in registry order. Empty: no DNAT rule (the user-space listener refuses). */
  endpoints: Addr[];
  /** Removed endpoints whose connections still drain: only their unanswered connects are reset. */
  gone?: Addr[];
  /** Removed endpoints whose drain time is up: every packet of their connections is reset. */
  cut?: Addr[];
}

export interface KernelPlan {
  table: string;
  listeners: KernelListener[];
}

const TABLE_RE = /^[a-z][a-z0-9_]{0,30}$/;

/** Why `a` cannot go into a rule (not an IPv4 address, or not a port), or undefined. */
export function badAddr(a: Addr): string | undefined {
  if (!isIPv4(a.ip)) return `${JSON.stringify(a.ip)} is not an IPv4 address`;
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535)
    return `${String(a.port)} is not a port number`;
  return undefined;
}

function checkAddr(a: Addr, what: string): void {
  const why = badAddr(a);
  if (why !== undefined) throw new Error(`${what}: ${why}`);
}

const isLoopback = (ip: string) => ip.startsWith('127.');

/** Can this listener use the kernel path at all (IPv4 listen address)? */
export function kernelCapableHost(host: string): boolean {
  return isIPv4(host);
}

/**
 * The nft script for a plan: create-then-delete-then-define, so the whole table is replaced in one
 * transaction whether or not it existed. Pure; throws on a value that is not an IPv4 address or port.
 */
export function planNftScript(plan: KernelPlan): string {
  if (!TABLE_RE.test(plan.table)) throw new Error(`invalid nft table name ${JSON.stringify(plan.table)}`);
  const t = plan.table;
  const nat: string[] = [];
  const masq: string[] = [];
  const chains: string[] = [];
  const filter: string[] = [];
  plan.listeners.forEach((l, i) => {
    checkAddr({ ip: l.host, port: l.port }, 'listen address');
    // Flows whose original destination is this listener: only ours, whatever else DNATs here.
    const ours =
      'meta l4proto tcp ct status dnat ' +
      (l.host === '0.0.0.0' ? '' : `ct original ip daddr ${l.host} `) +
      `ct original proto-dst ${l.port}`;
    for (const g of l.gone ?? []) {
      checkAddr(g, 'removed endpoint');
      // `ct direction original`: the reset this sends belongs to the same flow (reply direction)
      // and must not be dropped by the rule itself.
      filter.push(
        `    ${ours} ct direction original ct state new ct reply ip saddr ${g.ip} ct reply proto-src ${g.port} reject with tcp reset`,
      );
    }
    for (const c of l.cut ?? []) {
      checkAddr(c, 'removed endpoint');
      filter.push(
        `    ${ours} ct direction original ct reply ip saddr ${c.ip} ct reply proto-src ${c.port} reject with tcp reset`,
      );
    }
    if (l.endpoints.length === 0) return;
    l.endpoints.forEach((e) => checkAddr(e, 'endpoint'));
    const match =
      l.host === '0.0.0.0'
        ? `fib daddr type local tcp dport ${l.port}`
        : `ip daddr ${l.host} tcp dport ${l.port}`;
    nat.push(`    ${match} goto svc_${i}`);
    masq.push(`    ${ours} oifname != "lo" masquerade`);
    const map = l.endpoints.map((e, k) => `${k} : ${e.ip} . ${e.port}`).join(', ');
    chains.push(
      `  chain svc_${i} {`,
      `    meta l4proto tcp counter dnat ip addr . port to numgen inc mod ${l.endpoints.length} map { ${map} }`,
      '  }',
    );
  });
  return `${[
    `table ip ${t} {`,
    '}',
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  chain nat_output {',
    '    type nat hook output priority -100; policy accept;',
    ...nat,
    '  }',
    // A flow to another machine may carry a 127.0.0.1 source: it leaves with this machine's address.
    '  chain nat_postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    ...masq,
    '  }',
    ...chains,
    '  chain filter_output {',
    '    type filter hook output priority 0; policy accept;',
    ...filter,
    '  }',
    // Always there, so route_localnet is never on without it (CVE-2020-8558); a no-op while it is off.
    '  chain guard {',
    '    type filter hook prerouting priority -300; policy accept;',
    '    iifname != "lo" ip daddr 127.0.0.0/8 drop',
    '  }',
    '}',
  ].join('\n')}\n`;
}

/** The script that removes the table (a no-op when it does not exist). */
export function dropTableScript(table: string): string {
  if (!TABLE_RE.test(table)) throw new Error(`invalid nft table name ${JSON.stringify(table)}`);
  return `table ip ${table} {\n}\ndelete table ip ${table}\n`;
}

/**
 * Does any loopback or wildcard listener send to an endpoint that is not on this machine? Then the
 * kernel must route a 127.0.0.0/8 source off the host (route_localnet).
 */
export function needsRouteLocalnet(listeners: KernelListener[], local: ReadonlySet<string>): boolean {
  return listeners.some(
    (l) =>
      (isLoopback(l.host) || l.host === '0.0.0.0') &&
      l.endpoints.some((e) => !isLoopback(e.ip) && !local.has(e.ip)),
  );
}

// ---- the outside system ---------------------------------------------------------------------------

/** The host's packet filter and the two sysctls the kernel path reads or sets. */
export interface Netfilter {
  /** undefined when nft rules can be applied here; else the reason they cannot. */
  probe(): Promise<string | undefined>;
  /** Apply one nft script atomically. */
  apply(script: string): Promise<void>;
  /** IPv4 addresses of this machine. */
  localAddresses(): Set<string>;
  /**
   * `net.ipv4.conf.all.route_localnet`: read, and set. `setRouteLocalnet(true)` also records that a
   * flotilla proxy turned it on (`routeLocalnetOwned`, kept until reboot), so a restarted proxy
   * still puts it back; `setRouteLocalnet(false)` clears that record.
   */
  routeLocalnet(): boolean;
  setRouteLocalnet(on: boolean): void;
  routeLocalnetOwned(): boolean;
  /** Names of the `ip` tables whose name starts with `prefix`. */
  tables(prefix: string): Promise<string[]>;
}

const NFT_CANDIDATES = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/usr/local/sbin/nft'];
const ROUTE_LOCALNET = '/proc/sys/net/ipv4/conf/all/route_localnet';
/** Set while route_localnet is on because a flotilla proxy turned it on (tmpfs: gone at reboot). */
const OWNED_MARKER: string = HOST_PATHS.proxyRouteLocalnetMarker;
export const TABLE_PREFIX = 'flotilla_proxy_';

/** The real thing: the `nft` binary (argv only, script on stdin) and /proc/sys. */
export class NftNetfilter implements Netfilter {
  private nft: string | undefined;
  private readonly marker: string;

  /**
   * `ownershipMarker`: where the "a flotilla proxy set route_localnet" record lives (default
   * /run/flotilla/proxy-route-localnet). It must belong to the same network namespace as the sysctl:
   * a proxy run in a private network namespace on a shared /run passes its own.
   */
  constructor(opts: { ownershipMarker?: string } = {}) {
    this.marker = opts.ownershipMarker ?? OWNED_MARKER;
  }

  private binary(): string | undefined {
    if (this.nft) return this.nft;
    for (const c of NFT_CANDIDATES) {
      try {
        accessSync(c, constants.X_OK);
        return (this.nft = c);
      } catch {
        /* next */
      }
    }
    return undefined;
  }

  async probe(): Promise<string | undefined> {
    const nft = this.binary();
    if (!nft) return 'nft (package nftables) is not installed';
    if (process.getuid?.() !== 0) return 'not running as root';
    return new Promise((resolve) => {
      execFile(nft, ['list', 'tables'], { timeout: 5000 }, (err, _out, stderr) =>
        resolve(err ? `nft list tables failed: ${(stderr || err.message).trim().split('\n')[0]}` : undefined),
      );
    });
  }

  apply(script: string): Promise<void> {
    const nft = this.binary();
    if (!nft) return Promise.reject(new Error('nft (package nftables) is not installed'));
    return new Promise((resolve, reject) => {
      const child = spawn(nft, ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else
          reject(new Error(`nft -f - failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(0, 500)}`));
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(script);
    });
  }

  localAddresses(): Set<string> {
    const out = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) if (a.family === 'IPv4') out.add(a.address);
    return out;
  }

  routeLocalnet(): boolean {
    try {
      return readFileSync(ROUTE_LOCALNET, 'utf8').trim() === '1';
    } catch {
      return false;
    }
  }

  setRouteLocalnet(on: boolean): void {
    writeFileSync(ROUTE_LOCALNET, on ? '1\n' : '0\n');
    try {
      if (on) {
        mkdirSync(dirname(this.marker), { recursive: true, mode: 0o755 });
        writeFileSync(this.marker, `${process.pid}\n`, { mode: 0o644 });
      } else rmSync(this.marker, { force: true });
    } catch {
      /* the record is a convenience: without it a restarted proxy leaves the setting on */
    }
  }

  routeLocalnetOwned(): boolean {
    return existsSync(this.marker);
  }

  async tables(prefix: string): Promise<string[]> {
    const nft = this.binary();
    if (!nft) return [];
    return new Promise((resolve) => {
      execFile(nft, ['list', 'tables', 'ip'], { timeout: 5000, encoding: 'utf8' }, (err, out) =>
        resolve(
          err
            ? []
            : out
                .split('\n')
                .map((l) => /^table ip (\S+)$/.exec(l.trim())?.[1])
                .filter((t): t is string => t !== undefined && t.startsWith(prefix)),
        ),
      );
    });
  }
}

// ---- state: listeners, drain clock, serialized applies -----------------------------------------------

export interface KernelForwarderOptions {
  netfilter: Netfilter;
  table: string;
  log: Logger;
  drainTimeoutMs: number;
  /**
   * How long a removed endpoint's reset rule stays after its drain time (default 10 min). A
   * connection that sends nothing for all that time is not reset; its next packet goes to the old
   * endpoint (which answers with a reset itself if it is up and has forgotten the connection).
   */
  cutKeepMs?: number;
  now?: () => number;
}

interface Removed {
  listener: string;
  addr: Addr;
  at: number;
}

const key = (a: Addr) => `${a.ip}:${a.port}`;
/** setTimeout's limit; a longer delay would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Holds what every kernel-capable listener should do and keeps the table in step. `set()` records a
 * listener's endpoints; the table is rewritten soon after (changes in the same tick are applied
 * together; at most one `nft` runs at a time). A failed apply removes the table (and puts back a
 * route_localnet it set), so the user-space path takes every connection rather than the kernel
 * following stale rules; `failed` is then set and nothing more is applied.
 */
export class KernelForwarder {
  private readonly listeners = new Map<string, KernelListener>();
  /** Removed endpoints per listener, keyed `listener|ip:port`. */
  private readonly removed = new Map<string, Removed>();
  private readonly rejected = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  private setLocalnet = false;
  failed: Error | undefined;
  applies = 0;

  constructor(private readonly opts: KernelForwarderOptions) {
    // A flotilla proxy turned route_localnet on before (this one's previous run, before a restart):
    // this one puts it back when it stops.
    this.setLocalnet = opts.netfilter.routeLocalnetOwned() && opts.netfilter.routeLocalnet();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private keepMs(): number {
    return this.opts.cutKeepMs ?? 600_000;
  }

  /**
   * Set a listener's usable endpoints. IPv6 ones are left to user space; a record that cannot go
   * into a rule (bad port) is left out with a warning, once. Resolves once applied.
   */
  set(listen: Addr & { host?: string }, endpoints: Addr[]): Promise<void> {
    const host = listen.host ?? listen.ip;
    const k = `${host}:${listen.port}`;
    const v4 = endpoints
      .filter((e) => isIPv4(e.ip))
      .filter((e) => {
        const why = badAddr(e);
        if (why === undefined) return true;
        if (!this.rejected.has(`${k}|${e.ip}|${String(e.port)}`)) {
          this.rejected.add(`${k}|${e.ip}|${String(e.port)}`);
          this.opts.log.warn(
            { listen: k, endpoint: e, err: why },
            'proxy: endpoint record left out of the kernel rules',
          );
        }
        return false;
      });
    const before = this.listeners.get(k)?.endpoints ?? [];
    const now = this.now();
    const live = new Set(v4.map(key));
    for (const e of before)
      if (!live.has(key(e))) this.removed.set(`${k}|${key(e)}`, { listener: k, addr: e, at: now });
    for (const e of v4) this.removed.delete(`${k}|${key(e)}`);
    this.listeners.set(k, { host, port: listen.port, endpoints: v4 });
    return this.sync();
  }

  /** The plan for this moment (also used by tests). */
  plan(): KernelPlan {
    const now = this.now();
    const gone = new Map<string, Addr[]>();
    const cut = new Map<string, Addr[]>();
    for (const [k, r] of this.removed) {
      const age = now - r.at;
      const into =
        age < this.opts.drainTimeoutMs
          ? gone
          : age < this.opts.drainTimeoutMs + this.keepMs()
            ? cut
            : undefined;
      if (!into) {
        this.removed.delete(k);
        continue;
      }
      const list = into.get(r.listener) ?? [];
      list.push(r.addr);
      into.set(r.listener, list);
    }
    return {
      table: this.opts.table,
      listeners: [...this.listeners].map(([k, l]) => ({
        ...l,
        gone: gone.get(k) ?? [],
        cut: cut.get(k) ?? [],
      })),
    };
  }

  /** The next drain-clock transition (a removed endpoint moving from gone to cut to forgotten). */
  private nextTransition(): number | undefined {
    let next: number | undefined;
    for (const r of this.removed.values()) {
      for (const t of [r.at + this.opts.drainTimeoutMs, r.at + this.opts.drainTimeoutMs + this.keepMs()]) {
        if (t > this.now() && (next === undefined || t < next)) next = t;
      }
    }
    return next;
  }

  /** Rewrite the table now (coalesced); resolves when the rules in force include every prior `set`. */
  sync(): Promise<void> {
    this.dirty = true;
    if (!this.running) {
      this.running = (async () => {
        // Let the other listeners' changes of this tick join this apply.
        await new Promise((r) => setImmediate(r));
        while (this.dirty && !this.closed) {
          this.dirty = false;
          await this.applyOnce();
        }
        this.running = undefined;
      })();
      return this.running;
    }
    // An apply is running: the loop picks `dirty` up after it.
    return this.running;
  }

  private async applyOnce(): Promise<void> {
    if (this.failed) return;
    const plan = this.plan();
    const nf = this.opts.netfilter;
    try {
      // The table (with its guard) first; only then may route_localnet go on.
      await nf.apply(planNftScript(plan));
      this.applies++;
      if (needsRouteLocalnet(plan.listeners, nf.localAddresses()) && !nf.routeLocalnet()) {
        try {
          nf.setRouteLocalnet(true);
        } catch (e) {
          throw new Error(
            `cannot set net.ipv4.conf.all.route_localnet=1 (${(e as Error).message}): a loopback listener ` +
              'with endpoints on other machines needs it; set it at boot (sysctl.d) or use proxy_mode=userspace',
          );
        }
        this.setLocalnet = true;
        this.opts.log.info(
          { sysctl: 'net.ipv4.conf.all.route_localnet' },
          'proxy: kernel path routes loopback connections to other machines; set route_localnet=1 (127.0.0.0/8 from outside is dropped)',
        );
      }
    } catch (err) {
      this.failed = err as Error;
      this.opts.log.warn(
        { table: this.opts.table, err: (err as Error).message },
        'proxy: cannot apply the kernel rules; every connection now goes through user space',
      );
      await removeKernelRules(nf, this.opts.table, this.opts.log, this.setLocalnet);
      this.setLocalnet = false;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.nextTransition();
    if (next !== undefined && !this.closed) {
      this.timer = setTimeout(
        () => void this.sync(),
        Math.min(MAX_TIMER_MS, Math.max(0, next - this.now()) + 5),
      );
      this.timer.unref();
    }
  }

  /** Stop following changes, leaving the rules in force (an agent restart). */
  async detach(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /**
   * Remove the table; route_localnet goes back to 0 if a flotilla proxy set it and no other one's
   * table remains. Connections already mapped keep their mapping (conntrack), but those from a
   * loopback address to another machine stop working once route_localnet is 0.
   */
  async close(): Promise<void> {
    await this.detach();
    await removeKernelRules(this.opts.netfilter, this.opts.table, this.opts.log, this.setLocalnet);
  }
}

/**
 * Remove a proxy's table, and put route_localnet back when a flotilla proxy set it (`owned`, or the
 * ownership record says so) unless another flotilla proxy on this host still has its table (it may
 * need the setting; the last one to stop puts it back). Also used by an agent that starts without
 * the kernel path, to clear what its previous run left for it.
 */
export async function removeKernelRules(
  nf: Netfilter,
  table: string,
  log: Logger,
  owned = nf.routeLocalnetOwned() && nf.routeLocalnet(),
): Promise<void> {
  await nf
    .apply(dropTableScript(table))
    .catch((err: Error) => log.warn({ table, err: err.message }, 'proxy: cannot remove the kernel rules'));
  const others = (await nf.tables(TABLE_PREFIX)).filter((t) => t !== table);
  if (owned && others.length === 0) {
    try {
      nf.setRouteLocalnet(false);
    } catch {
      /* best effort */
    }
  }
}
