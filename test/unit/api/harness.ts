/**
 * The real ApiServer on a temp unix socket (and optionally an mTLS TCP listener) over a real
 * registry (embedded by default), with a real ClusterView feeding the events stream, plus a small
 * HTTP client for tests (JSON requests, streamed reads with a disconnect).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterView } from '../../../src/registry/cluster-view.js';
import { FleetV1 } from '../../../src/api/fleet-v1.js';
import { FlotillaV1 } from '../../../src/api/flotilla-v1.js';
import { ApiServer, type UpgradeHandler } from '../../../src/api/server.js';
import { UnitLogs, type UnitLogsDeps } from '../../../src/api/unit-logs.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import type { KvStore } from '../../../src/registry/kv.js';
import { Registry } from '../../../src/registry/registry.js';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, when there is one. */
  json: unknown;
}

export interface Target {
  socketPath?: string;
  /** https://host:port with client TLS material. */
  tls?: { host: string; port: number; ca: Buffer; cert?: Buffer; key?: Buffer };
}

function open(t: Target, method: string, path: string, headers: Record<string, string>) {
  if (t.socketPath) return request({ socketPath: t.socketPath, method, path, headers });
  const x = t.tls!;
  return httpsRequest({
    host: x.host,
    port: x.port,
    method,
    path,
    headers,
    ca: x.ca,
    ...(x.cert ? { cert: x.cert, key: x.key } : {}),
  });
}

/** One request; the whole body is read. `body` objects are sent as JSON. */
export function call(
  t: Target,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const payload =
    body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const h = { ...headers };
  if (payload && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
    h['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = open(t, method, path, h);
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** A streamed response: lines as they arrive, with their arrival times; `close()` disconnects. */
export class Stream {
  status = 0;
  headers: IncomingHttpHeaders = {};
  text = '';
  readonly lines: { line: string; at: number }[] = [];
  ended = false;
  private res: IncomingMessage | undefined;
  private readonly req: ReturnType<typeof open>;
  private partial = '';
  private waiters: (() => void)[] = [];
  readonly ready: Promise<void>;

  constructor(t: Target, path: string) {
    this.req = open(t, 'GET', path, {});
    this.ready = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.on('data', (c: Buffer) => {
          const at = performance.now();
          const s = c.toString('utf8');
          this.text += s;
          const parts = (this.partial + s).split('\n');
          this.partial = parts.pop()!;
          for (const line of parts) this.lines.push({ line, at });
          this.wake();
        });
        res.on('end', () => {
          this.ended = true;
          this.wake();
        });
        res.on('error', () => {
          this.ended = true;
          this.wake();
        });
        resolve();
      });
      this.req.on('error', (e) => {
        this.ended = true;
        this.wake();
        reject(e);
      });
    });
    this.req.end();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until a line matches (returns it) or the timeout passes (throws). */
  async waitFor(
    pred: (line: string) => boolean,
    timeoutMs = 5000,
    from = 0,
  ): Promise<{ line: string; at: number; index: number }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l, idx) => idx >= from && pred(l.line));
      if (i >= 0) return { ...this.lines[i]!, index: i };
      if (this.ended) throw new Error(`stream ended without the line; got:\n${this.text}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms; got:\n${this.text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Parsed NDJSON lines (blank lines skipped). */
  json(): Record<string, unknown>[] {
    return this.lines
      .filter((l) => l.line.trim() !== '')
      .map((l) => JSON.parse(l.line) as Record<string, unknown>);
  }

  close(): void {
    this.res?.destroy();
    this.req.destroy();
  }
}

export interface Agent {
  dir: string;
  store: KvStore;
  registry: Registry;
  view: ClusterView;
  server: ApiServer;
  socketPath: string;
  fleet: FleetV1;
  flotilla: FlotillaV1;
  target: Target;
  close(): Promise<void>;
}

export interface AgentOptions {
  machineID?: string;
  /** Use this store (shared registry) instead of a new embedded one; not closed by close(). */
  store?: KvStore;
  logs?: Omit<UnitLogsDeps, 'registry' | 'machineID'>;
  tcp?: { ca: string; cert: string; key: string };
  pingMs?: number;
  maxBacklog?: number;
  /** Lines the events stream keeps for `?since=R`. */
  replayLines?: number;
  /** WebSocket upgrades (the dashboard's terminal). */
  upgrade?: UpgradeHandler;
}

/** An agent's API (no systemd, no engine): registry + cluster view + the real server. */
export async function startAgent(o: AgentOptions = {}): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-api-'));
  const own = o.store === undefined;
  const store = o.store ?? (await EmbeddedKvStore.open({ dataDir: join(dir, 'registry') }));
  const registry = new Registry(store);
  const view = new ClusterView(registry);
  await view.start();
  const machineID = o.machineID ?? 'a'.repeat(32);
  const fleet = new FleetV1(registry);
  const flotilla = new FlotillaV1({
    machineID,
    view,
    machines: () => fleet.machines(),
    logs: new UnitLogs({ registry, machineID, ...(o.logs ?? {}) }),
    ...(o.pingMs !== undefined ? { pingMs: o.pingMs } : {}),
    ...(o.maxBacklog !== undefined ? { maxBacklog: o.maxBacklog } : {}),
    ...(o.replayLines !== undefined ? { replayLines: o.replayLines } : {}),
  });
  const server = new ApiServer([(r) => fleet.route(r), (r) => flotilla.route(r)], o.upgrade);
  const socketPath = join(dir, 'fleet.sock');
  await server.listen({
    socketPath,
    ...(o.tcp ? { tcp: { host: '127.0.0.1', port: 0, ...o.tcp } } : {}),
  });
  return {
    dir,
    store,
    registry,
    view,
    server,
    socketPath,
    fleet,
    flotilla,
    target: { socketPath },
    async close() {
      await server.close();
      view.stop();
      if (own) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Is process `pid` alive? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait until `pred` holds, polling every 50 ms. */
export async function until(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await pred())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
