/**
 * Run by proxy-kernel.test.ts inside a private network namespace (see there). Drives the service proxy's kernel
 * path with the real `nft`, real conntrack and real TCP, and prints one JSON report on stdout; the
 * test asserts on it. Each step records what it saw, never a verdict.
 */
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceProxy } from '../../src/proxy/proxy.js';
import { NftNetfilter } from '../../src/proxy/kernel.js';
import type { EndpointSource, EndpointSourceEvents } from '../../src/discovery/services-view.js';
import type { ServiceEndpointRecord } from '../../src/registry/types.js';
import type { Logger } from '../../src/lib/log.js';

const report: Record<string, unknown> = {};
const lines: string[] = [];
const log: Logger = {
  debug: () => undefined,
  info: (_f, m) => void lines.push(`info ${m}`),
  warn: (_f, m) => void lines.push(`warn ${m}`),
  error: (_f, m) => void lines.push(`error ${m}`),
};

class Source extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
  list: ServiceEndpointRecord[] = [];
  endpoints(service: string) {
    return this.list.filter((e) => e.service === service);
  }
  services() {
    return [...new Set(this.list.map((e) => e.service))];
  }
  set(eps: { ip: string; port: number }[]) {
    this.list = eps.map((e) => ({
      service: 'db',
      machineID: `m-${e.ip}-${e.port}`,
      ip: e.ip,
      port: e.port,
      container: 'c',
      health: 'none',
      registered: Date.now(),
    }));
    this.emit('changed', new Set(['db']));
  }
}

/** Answers every line with `<name>`. */
async function backend(name: string): Promise<{ port: number; server: Server }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.setEncoding('utf8');
    s.on('data', () => s.write(`${name}\n`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One line out, one line back; the error code if the socket fails first. */
function ask(s: Socket, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const done = (v: string) => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('error', onErr);
      s.off('close', onClose);
      resolve(v);
    };
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) done(got.trim());
    };
    const onErr = (e: NodeJS.ErrnoException) => done(e.code ?? 'error');
    const onClose = () => done('closed');
    const t = setTimeout(() => done('timeout'), timeoutMs);
    s.on('data', onData);
    s.on('error', onErr);
    s.on('close', onClose);
    s.write('who\n');
  });
}

async function oneShot(port: number): Promise<string> {
  try {
    const s = await open(port);
    const who = await ask(s);
    s.destroy();
    return who;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error';
  }
}

const nftTables = () => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
const routeLocalnet = () => readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8').trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const a = await backend('A');
  const b = await backend('B');
  const source = new Source();
  source.set([
    { ip: '127.0.0.1', port: a.port },
    { ip: '127.0.0.1', port: b.port },
  ]);
  const drainTimeoutMs = 1500;
  const proxy = new ServiceProxy({
    listen: [{ service: 'db', host: '127.0.0.1', port: 0 }],
    source,
    log,
    mode: 'kernel',
    drainTimeoutMs,
    // This namespace's route_localnet is not the host's: keep the ownership record out of the host's /run.
    netfilter: new NftNetfilter({
      ownershipMarker: join(mkdtempSync(join(tmpdir(), 'flotilla-probe-')), 'owned'),
    }),
  });
  await proxy.start();
  const port = Number(proxy.addresses()[0]!.address.split(':')[1]);
  report.mode = proxy.mode;
  report.tablesAfterStart = nftTables();

  // 1. Balancing, and the user-space listener sees none of it.
  const spread: Record<string, number> = {};
  for (let i = 0; i < 10; i++) {
    const who = await oneShot(port);
    spread[who] = (spread[who] ?? 0) + 1;
  }
  report.spread = spread;
  report.userspaceAcceptedAfterSpread = proxy.stats()[0]!.accepted;

  // 2. Drain: a connection to A keeps working after A is removed, until the drain time is up.
  let longA: Socket | undefined;
  for (let i = 0; i < 10 && !longA; i++) {
    const s = await open(port);
    if ((await ask(s)) === 'A') longA = s;
    else s.destroy();
  }
  report.longLivedToA = longA !== undefined;
  source.set([{ ip: '127.0.0.1', port: b.port }]);
  await proxy.settled();
  const afterRemove: string[] = [];
  for (let i = 0; i < 6; i++) afterRemove.push(await oneShot(port));
  report.afterRemove = afterRemove;
  report.drainingAnswer = longA ? await ask(longA) : 'none';
  await sleep(drainTimeoutMs + 400);
  const tCut = Date.now();
  report.afterDrainAnswer = longA ? await ask(longA) : 'none';
  report.afterDrainMs = Date.now() - tCut;
  longA?.destroy();

  // 3. An endpoint on another machine (10.99.0.2, a server in a peer namespace across a veth): the
  //    loopback listener's connections leave with a 127.0.0.1 source, so the proxy sets
  //    route_localnet (put back on close) and masquerades them.
  report.routeLocalnetBefore = routeLocalnet();
  source.set([{ ip: '10.99.0.2', port: 7000 }]);
  await proxy.settled();
  report.routeLocalnetWithRemote = routeLocalnet();
  report.remoteAnswers = [await oneShot(port), await oneShot(port)];
  report.rulesWithRemote = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });

  // 4. A connect that never gets its SYN-ACK (10.99.0.3 is a dead address: a static neighbour on the
  //    veth that nobody answers for) is reset as soon as that endpoint is removed, instead of hanging
  //    on SYN retries.
  source.set([{ ip: '10.99.0.3', port: 80 }]);
  await proxy.settled();
  const hanging = connect(port, '127.0.0.1');
  let outcome = 'pending';
  let outcomeAt = 0;
  hanging.once('connect', () => ((outcome = 'connected'), (outcomeAt = Date.now())));
  hanging.once(
    'error',
    (e: NodeJS.ErrnoException) => ((outcome = e.code ?? 'error'), (outcomeAt = Date.now())),
  );
  await sleep(300);
  report.hangingBeforeRemove = outcome;
  const tRemove = Date.now();
  source.set([{ ip: '127.0.0.1', port: b.port }]);
  await proxy.settled();
  while (outcome === 'pending' && Date.now() - tRemove < 8000) await sleep(10);
  report.hangingOutcome = outcome;
  report.hangingResolvedMs = outcomeAt ? outcomeAt - tRemove : -1;
  hanging.destroy();
  report.afterRemoteRemoved = await oneShot(port);

  // 5. No endpoint: the user-space listener refuses, with its log line.
  source.set([]);
  await proxy.settled();
  report.noEndpoint = await oneShot(port);
  report.refused = proxy.stats()[0]!.refused;

  // 6. Back again, then close: the table goes, route_localnet is put back.
  source.set([{ ip: '127.0.0.1', port: a.port }]);
  await proxy.settled();
  report.backAgain = await oneShot(port);
  report.userspaceAcceptedTotal = proxy.stats()[0]!.accepted;
  await proxy.close();
  report.tablesAfterClose = nftTables();
  report.routeLocalnetAfterClose = routeLocalnet();
  report.log = lines;
  a.server.close();
  b.server.close();
}

try {
  await main();
} catch (err) {
  report.error = (err as Error).stack ?? String(err);
  report.log = lines;
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
