/**
 * `npm run bench -- docker-proxy [--rounds R] [--seconds S] [--conns C] [--pings N] [--reroutes N]`
 * (also part of `npm run bench -- docker`).
 *
 * The service proxy (src/proxy/proxy.ts) over loopback, against a direct connection in the same run,
 * on both data paths (user space, and the kernel path of src/proxy/kernel.ts):
 *   1. throughput: C connections stream 64 KiB writes for S seconds into a sink server (the sink
 *      reports the bytes it got: upload), and C connections read for S seconds from a source server
 *      that streams 64 KiB writes (download); MiB/s direct vs through each path, and the proxy
 *      process's own CPU time per GiB. Target: proxy ≥ 80% of direct.
 *   2. latency: 32-byte request/response on one connection (N round trips), and new connections
 *      (connect + one round trip + close); p50/p99 direct vs through each path.
 *   3. reroute: the service's only endpoint A is replaced in the registry (one txn: delete A, put B)
 *      while a client per path opens connections back to back; the time from the registry write until
 *      the first connection answered by B. Target ≤ 1 s. The registry is a private single-member etcd
 *      (test/support/etcd-single.ts), or the embedded store without etcd.
 *
 * Run as root with nft installed, the whole bench re-runs itself in a fresh network namespace
 * (`unshare --net`, loopback only), so the kernel path's nft table, route_localnet and all the
 * traffic stay there. Otherwise the kernel column says why it is missing.
 *
 * The sink/echo servers and the load clients run in child processes (this file with `--worker`), the
 * proxies in this process, so no two of them share an event loop. Rounds interleave direct, user
 * space and kernel; the median round is reported (the machine is shared and noisy).
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ServiceProxy } from '../src/proxy/proxy.js';
import {
  ServicesView,
  type EndpointSource,
  type EndpointSourceEvents,
} from '../src/discovery/services-view.js';
import { EmbeddedKvStore } from '../src/registry/embedded/index.js';
import { EtcdKvStore } from '../src/registry/etcd.js';
import type { KvStore } from '../src/registry/kv.js';
import { Registry } from '../src/registry/registry.js';
import type { ServiceEndpointRecord } from '../src/registry/types.js';
import { nullLogger } from '../src/lib/log.js';
import { etcdBinary, startSingleEtcd } from '../test/support/etcd-single.js';
import { nowMs, summarize } from './stats.js';
import { printTable } from './table.js';

const SELF = fileURLToPath(import.meta.url);
const CHUNK = 64 * 1024;

// ---- workers (child processes) ------------------------------------------------------------------

/** Sink (counts bytes, answers the count when the client ends) and echo servers; prints their ports. */
async function serverWorker(): Promise<void> {
  const sink = createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`${n}\n`));
    s.on('error', () => undefined);
  });
  const echo = createServer((s) => {
    s.setNoDelay(true);
    s.pipe(s);
    s.on('error', () => undefined);
  });
  // Source: streams 64 KiB writes until the client goes away.
  const chunk = Buffer.alloc(CHUNK, 0x63);
  const source = createServer((s) => {
    s.on('error', () => undefined);
    const pump = () => {
      while (!s.destroyed) if (!s.write(chunk)) return void s.once('drain', pump);
    };
    pump();
  });
  await Promise.all(
    [sink, echo, source].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))),
  );
  const port = (srv: Server) => (srv.address() as { port: number }).port;
  process.stdout.write(`${JSON.stringify({ sink: port(sink), echo: port(echo), source: port(source) })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function throughputClient(port: number, conns: number, seconds: number): Promise<unknown> {
  const buf = Buffer.alloc(CHUNK, 0x61);
  const t0 = nowMs();
  const totals = await Promise.all(
    Array.from({ length: conns }, async () => {
      const s = await open(port);
      const until = t0 + seconds * 1000;
      await new Promise<void>((resolve) => {
        const pump = () => {
          while (nowMs() < until) if (!s.write(buf)) return void s.once('drain', pump);
          resolve();
        };
        pump();
      });
      return new Promise<number>((resolve, reject) => {
        let reply = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => (reply += d));
        s.on('end', () => resolve(Number(reply.trim())));
        s.on('error', reject);
        s.end();
      });
    }),
  );
  const secs = (nowMs() - t0) / 1000;
  const bytes = totals.reduce((a, b) => a + b, 0);
  return { mibPerSec: bytes / secs / 1024 / 1024, bytes };
}

/** Download: C connections read from the source for S seconds. */
async function downloadClient(port: number, conns: number, seconds: number): Promise<unknown> {
  const socks = await Promise.all(Array.from({ length: conns }, () => open(port)));
  let bytes = 0;
  const t0 = nowMs();
  for (const s of socks) s.on('data', (d: Buffer) => (bytes += d.length));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const secs = (nowMs() - t0) / 1000;
  for (const s of socks) s.destroy();
  return { mibPerSec: bytes / secs / 1024 / 1024, bytes };
}

async function latencyClient(port: number, pings: number): Promise<unknown> {
  const s = await open(port);
  const msg = Buffer.alloc(32, 0x62);
  const rtt: number[] = [];
  for (let i = 0; i < pings; i++) {
    const t = nowMs();
    await new Promise<void>((resolve) => {
      let got = 0;
      const on = (d: Buffer) => {
        got += d.length;
        if (got >= msg.length) {
          s.off('data', on);
          resolve();
        }
      };
      s.on('data', on);
      s.write(msg);
    });
    rtt.push(nowMs() - t);
  }
  s.destroy();
  const conn: number[] = [];
  for (let i = 0; i < Math.max(50, Math.floor(pings / 10)); i++) {
    const t = nowMs();
    const c = await open(port);
    await new Promise<void>((resolve) => {
      c.once('data', () => resolve());
      c.write(msg);
    });
    c.destroy();
    conn.push(nowMs() - t);
  }
  const r = summarize(rtt);
  const c = summarize(conn);
  return { rttP50: r.p50, rttP99: r.p99, connP50: c.p50, connP99: c.p99 };
}

async function worker(args: string[]): Promise<void> {
  const [role, ...rest] = args;
  if (role === 'server') return serverWorker();
  const n = rest.map(Number);
  const out =
    role === 'throughput'
      ? await throughputClient(n[0]!, n[1]!, n[2]!)
      : role === 'download'
        ? await downloadClient(n[0]!, n[1]!, n[2]!)
        : await latencyClient(n[0]!, n[1]!);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

// ---- driver ---------------------------------------------------------------------------------------

function child(args: string[]): { first: Promise<string>; done: Promise<void>; end(): void } {
  const p = spawn(process.execPath, ['--import', 'tsx', SELF, '--worker', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: p.stdout });
  const first = new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    p.once('exit', (code) => reject(new Error(`worker ${args[0]} exited ${code} without output`)));
  });
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  return { first, done, end: () => p.stdin.end() };
}

async function runClient<T>(args: (string | number)[]): Promise<T> {
  const c = child(args.map(String));
  const line = await c.first;
  await c.done;
  return JSON.parse(line) as T;
}

/** A fixed endpoint list (the throughput/latency parts do not exercise the registry). */
class StaticSource extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
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

function endpoint(service: string, port: number, machineID = `m${port}`): ServiceEndpointRecord {
  return {
    service,
    machineID,
    ip: '127.0.0.1',
    port,
    container: 'bench',
    health: 'none',
    registered: Date.now(),
  };
}

function opt(args: string[], name: string, def: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: not a positive number`);
  return v;
}

const median = (xs: number[]) => summarize(xs).p50;
const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

type Tp = { mibPerSec: number; bytes: number };
type Lat = { rttP50: number; rttP99: number; connP50: number; connP99: number };
interface PathRuns {
  up: number[];
  down: number[];
  lat: Lat[];
  upCpuMsPerGiB: number[];
  downCpuMsPerGiB: number[];
}
const emptyRuns = (): PathRuns => ({ up: [], down: [], lat: [], upCpuMsPerGiB: [], downCpuMsPerGiB: [] });

/** One path's round: upload, download (with this process's CPU per GiB) and latency. */
async function measure(
  runs: PathRuns,
  p: { sink: number; source: number; echo: number },
  conns: number,
  seconds: number,
  pings: number,
): Promise<void> {
  const cpu0 = process.cpuUsage();
  const up = await runClient<Tp>(['throughput', p.sink, conns, seconds]);
  const cpu = process.cpuUsage(cpu0);
  runs.up.push(up.mibPerSec);
  // The proxy's own CPU time per GiB it moved (this process runs nothing else meanwhile; the kernel
  // path's work is done in the clients' and servers' system calls, so it shows ~0 here).
  runs.upCpuMsPerGiB.push((cpu.user + cpu.system) / 1000 / (up.bytes / 2 ** 30));
  const dcpu0 = process.cpuUsage();
  const dn = await runClient<Tp>(['download', p.source, conns, seconds]);
  const dcpu = process.cpuUsage(dcpu0);
  runs.down.push(dn.mibPerSec);
  runs.downCpuMsPerGiB.push((dcpu.user + dcpu.system) / 1000 / (dn.bytes / 2 ** 30));
  runs.lat.push(await runClient<Lat>(['latency', p.echo, pings]));
}

/**
 * Direct, user-space proxy and kernel proxy, interleaved round by round. The kernel path needs its
 * own network namespace (its nft table and the loopback traffic stay there): `dataPath` re-runs this
 * part under `unshare --net` when it is root; otherwise the kernel column says why it is missing.
 */
async function dataPathHere(args: string[], kernelWhy: string | undefined): Promise<(string | number)[][]> {
  const rounds = opt(args, 'rounds', 5);
  const seconds = opt(args, 'seconds', 2);
  const conns = opt(args, 'conns', 4);
  const pings = opt(args, 'pings', 3000);
  const server = child(['server']);
  const ports = JSON.parse(await server.first) as { sink: number; echo: number; source: number };
  const source = new StaticSource([
    endpoint('sink', ports.sink),
    endpoint('echo', ports.echo),
    endpoint('source', ports.source),
  ]);
  const listen = () => [
    { service: 'sink', host: '127.0.0.1', port: 0 },
    { service: 'echo', host: '127.0.0.1', port: 0 },
    { service: 'source', host: '127.0.0.1', port: 0 },
  ];
  const user = new ServiceProxy({ listen: listen(), source, log: nullLogger, mode: 'userspace' });
  await user.start();
  const kernel =
    kernelWhy === undefined
      ? new ServiceProxy({ listen: listen(), source, log: nullLogger, mode: 'kernel' })
      : undefined;
  await kernel?.start();
  const portsOf = (p: ServiceProxy) => {
    const [sink, echo, src] = p.addresses().map((a) => Number(a.address.split(':')[1]));
    return { sink: sink!, echo: echo!, source: src! };
  };
  const direct = emptyRuns();
  const viaUser = emptyRuns();
  const viaKernel = emptyRuns();
  try {
    for (let r = 0; r < rounds; r++) {
      await measure(direct, ports, conns, seconds, pings);
      await measure(viaUser, portsOf(user), conns, seconds, pings);
      if (kernel) await measure(viaKernel, portsOf(kernel), conns, seconds, pings);
    }
  } finally {
    await user.close();
    await kernel?.close();
    server.end();
    await server.done;
  }
  const pct = (v: number, d: number) => `${((v / d) * 100).toFixed(0)}%`;
  const k = (f: (r: PathRuns) => number) => (kernel ? f(viaKernel) : `n/a: ${kernelWhy}`);
  const tpRow = (name: string, pick: (r: PathRuns) => number[]) => {
    const d = median(pick(direct));
    const u = median(pick(viaUser));
    const kv = kernel ? median(pick(viaKernel)) : undefined;
    const best = Math.max(u, kv ?? 0);
    return [
      name,
      d,
      u,
      kv ?? `n/a: ${kernelWhy}`,
      `user ${pct(u, d)}, kernel ${kv === undefined ? '-' : pct(kv, d)} of direct`,
      '≥ 80% of direct',
      best / d >= 0.8 ? `ok (${kv !== undefined && kv >= u ? 'kernel' : 'user'})` : 'MISSED',
    ];
  };
  const lat = (key: keyof Lat, name: string) => {
    const m = (r: PathRuns) => median(r.lat.map((l) => l[key]));
    const d = m(direct);
    return [
      name,
      d,
      m(viaUser),
      k(m),
      `user ${signed(m(viaUser) - d)}, kernel ${kernel ? signed(m(viaKernel) - d) : '-'}`,
      '-',
      '-',
    ];
  };
  return [
    tpRow(`upload throughput, ${conns} connections (MiB/s)`, (r) => r.up),
    tpRow(`download throughput, ${conns} connections (MiB/s)`, (r) => r.down),
    [
      'proxy process CPU per GiB, upload (ms)',
      '-',
      median(viaUser.upCpuMsPerGiB),
      k((r) => median(r.upCpuMsPerGiB)),
      'user + system',
      '-',
      '-',
    ],
    [
      'proxy process CPU per GiB, download (ms)',
      '-',
      median(viaUser.downCpuMsPerGiB),
      k((r) => median(r.downCpuMsPerGiB)),
      'user + system',
      '-',
      '-',
    ],
    lat('rttP50', 'request round trip p50 (ms)'),
    lat('rttP99', 'request round trip p99 (ms)'),
    lat('connP50', 'new connection + 1 round trip p50 (ms)'),
    lat('connP99', 'new connection + 1 round trip p99 (ms)'),
  ];
}

/** Why the kernel path cannot be measured here, or undefined. */
async function kernelUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (its own network namespace)';
  const { NftNetfilter } = await import('../src/proxy/kernel.js');
  return new NftNetfilter().probe();
}

/** Servers that answer each connection with their name and close. */
async function namedServer(name: string): Promise<{ port: number; close(): Promise<void> }> {
  const srv = createServer((s) => {
    s.on('error', () => undefined);
    s.end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as { port: number }).port,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

function ask(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got || 'closed'));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

async function reroute(args: string[], kernelWhy: string | undefined): Promise<(string | number)[][]> {
  const runs = opt(args, 'reroutes', 20);
  const etcd = etcdBinary() ? await startSingleEtcd() : undefined;
  const dir = etcd ? undefined : mkdtempSync(join(tmpdir(), 'flotilla-bench-proxy-'));
  const store: KvStore = etcd
    ? new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/flotilla/' })
    : await EmbeddedKvStore.open({ dataDir: dir! });
  const registry = new Registry(store);
  const lease = (await store.grantLease(300)).id;
  const view = new ServicesView(registry);
  await view.start();
  const modes: ('userspace' | 'kernel')[] = kernelWhy === undefined ? ['userspace', 'kernel'] : ['userspace'];
  const proxies = modes.map(
    (mode) =>
      new ServiceProxy({
        listen: [{ service: 'db', host: '127.0.0.1', port: 0 }],
        source: view,
        log: nullLogger,
        mode,
      }),
  );
  for (const p of proxies) await p.start();
  const pports = proxies.map((p) => Number(p.addresses()[0]!.address.split(':')[1]));
  const a = await namedServer('A');
  const b = await namedServer('B');
  const write: number[] = [];
  const applied: number[] = [];
  const firstB: number[][] = modes.map(() => []);
  try {
    for (let i = 0; i < runs; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      const [fromName, toName] = from === a ? ['A', 'B'] : ['B', 'A'];
      // Start state: only `from` registered, and every proxy routes to it.
      await registry.applyEndpoints(lease, {
        put: [endpoint('db', from.port)],
        remove: [{ service: 'db', machineID: `m${to.port}`, port: to.port }],
      });
      for (const pport of pports) {
        for (;;) {
          if ((await ask(pport)) === fromName) break;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      let stop = false;
      const tFirst = modes.map(() => 0);
      const t0 = nowMs();
      let tApplied = 0;
      const onChanged = (s: Set<string>) => {
        if (s.has('db') && tApplied === 0 && view.endpoints('db').some((e) => e.port === to.port))
          tApplied = nowMs();
      };
      view.on('changed', onChanged);
      // One client per proxy, opening connections back to back.
      const loops = pports.map(async (pport, k) => {
        while (!stop) {
          const who = await ask(pport);
          if (who === toName) {
            tFirst[k] = nowMs();
            return;
          }
        }
      });
      // The endpoint disappears and its replacement appears, in one registry change.
      await registry.applyEndpoints(lease, {
        put: [endpoint('db', to.port)],
        remove: [{ service: 'db', machineID: `m${from.port}`, port: from.port }],
      });
      const tWritten = nowMs();
      const deadline = nowMs() + 10_000;
      while (tFirst.some((t) => t === 0) && nowMs() < deadline) await new Promise((r) => setTimeout(r, 1));
      stop = true;
      await Promise.all(loops);
      view.off('changed', onChanged);
      write.push(tWritten - t0);
      applied.push((tApplied || Infinity) - t0);
      tFirst.forEach((t, k) => firstB[k]!.push((t || Infinity) - t0));
    }
  } finally {
    for (const p of proxies) await p.close();
    view.stop();
    await a.close();
    await b.close();
    await store.close();
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  const s = (xs: number[]) => summarize(xs);
  const fmt = (xs: number[]) => `${s(xs).p50.toFixed(1)} / ${s(xs).p99.toFixed(1)} / ${s(xs).max.toFixed(1)}`;
  const ok = (xs: number[]) => (s(xs).max <= 1000 ? 'ok' : 'MISSED');
  const backend = etcd ? 'etcd' : 'embedded';
  const k = kernelWhy === undefined ? firstB[1]! : undefined;
  return [
    [
      `registry write (${backend}, one txn) p50/p99 (ms)`,
      '-',
      `${s(write).p50.toFixed(1)} / ${s(write).p99.toFixed(1)}`,
      '-',
      '-',
      '-',
      '-',
    ],
    [
      'reroute: write start → registry change seen p50/p99/max (ms)',
      '-',
      fmt(applied),
      '(same view)',
      `${runs} runs`,
      '≤ 1000',
      ok(applied),
    ],
    [
      'reroute: write start → first connection served by the new endpoint p50/p99/max (ms)',
      '-',
      fmt(firstB[0]!),
      k ? fmt(k) : `n/a: ${kernelWhy}`,
      `${runs} runs`,
      '≤ 1000',
      ok(k ? [...firstB[0]!, ...k] : firstB[0]!),
    ],
  ];
}

export const PROXY_HEADER = [
  'metric',
  'direct',
  'user-space proxy',
  'kernel proxy',
  'note',
  'target',
  'result',
];

/** Both parts' rows (for bench/docker.ts). */
export async function proxyBench(args: string[]): Promise<(string | number)[][]> {
  const why = await kernelUnavailable();
  if (why !== undefined || process.env.FLOTILLA_BENCH_NETNS === '1')
    return [...(await dataPathHere(args, why)), ...(await reroute(args, why))];
  // Re-run in a fresh network namespace (loopback only): the nft table, route_localnet and all the
  // traffic stay inside it.
  const p = spawn(
    'unshare',
    [
      '--net',
      '--',
      'sh',
      '-c',
      'ip link set lo up && exec "$0" "$@"',
      process.execPath,
      '--import',
      'tsx',
      SELF,
      '--netns',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLOTILLA_BENCH_NETNS: '1' } },
  );
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((r) => p.on('close', r));
  if (code !== 0) throw new Error(`the proxy bench in its own network namespace exited ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!) as (string | number)[][];
}

export default async function bench(args: string[]): Promise<void> {
  printTable(
    'Service proxy over loopback (direct vs through flotilla proxy, same run)',
    PROXY_HEADER,
    await proxyBench(args),
  );
}

if (process.argv[1] === SELF && process.argv[2] === '--worker') {
  await worker(process.argv.slice(3));
}
if (process.argv[1] === SELF && process.argv[2] === '--netns') {
  const rows = await proxyBench(process.argv.slice(3));
  process.stdout.write(`${JSON.stringify(rows)}\n`);
  process.exit(0);
}
