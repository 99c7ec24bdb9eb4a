/**
 * RemoteServices: an EndpointSource that follows the agent's API instead of the registry, for
 * `flotilla proxy` (which needs no etcd credentials and also works with the embedded registry). It
 * holds one `GET /flotilla/v1/services?watch=true` stream (NDJSON, src/api/services.ts):
 *
 *   - the first line after (re)connecting is the full set, which replaces what was known;
 *   - each later line carries the full endpoint list of every service that changed;
 *   - the agent sends a heartbeat every 5 s; with no line for 15 s the stream is dropped;
 *   - on any error or end it reconnects with backoff (250 ms doubling to 5 s). Meanwhile the last
 *     known endpoints stay in use (the proxy's connect failover copes with stale ones).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FlotillaError } from '../lib/errors.js';
import type { ServiceEndpointRecord } from '../registry/types.js';
import type { Logger } from '../lib/log.js';
import type { EndpointSource, EndpointSourceEvents } from './services-view.js';
import { Backoff } from '../lib/backoff.js';

export interface RemoteOptions {
  /** `unix:///var/run/fleet.sock`, `http://host:port` or `https://host:port` (mutual TLS). */
  endpoint: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  log: Logger;
  /** No line for this long: reconnect. Default 15 s (3 heartbeats). */
  idleTimeoutMs?: number;
}

const WATCH_PATH = '/flotilla/v1/services?watch=true';

function requestOptions(o: RemoteOptions): { opts: RequestOptions; https: boolean } {
  let url: URL;
  try {
    url = new URL(o.endpoint.split(',')[0]!.trim());
  } catch {
    throw new FlotillaError('E_USAGE', `--endpoint: ${JSON.stringify(o.endpoint)} is not a URL`);
  }
  if (url.protocol === 'unix:' || url.protocol === 'file:') {
    return { opts: { socketPath: url.pathname, path: WATCH_PATH }, https: false };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FlotillaError('E_USAGE', `--endpoint: unsupported scheme ${JSON.stringify(url.protocol)}`);
  }
  const https = url.protocol === 'https:';
  const opts: RequestOptions & { ca?: Buffer; cert?: Buffer; key?: Buffer } = {
    host: url.hostname,
    port: url.port || (https ? 443 : 80),
    path: WATCH_PATH,
  };
  if (https) {
    if (o.caFile) opts.ca = readFileSync(o.caFile);
    if (o.certFile) opts.cert = readFileSync(o.certFile);
    if (o.keyFile) opts.key = readFileSync(o.keyFile);
  }
  return { opts, https };
}

export class RemoteServices extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
  private readonly byService = new Map<string, ServiceEndpointRecord[]>();
  private readonly req: { opts: RequestOptions; https: boolean };
  private current: ClientRequest | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(250, 5000);
  /** Resolves on the first full set (or rejects on the first failure, for start()). */
  private first: { resolve: () => void; reject: (e: Error) => void } | undefined;
  connected = false;
  revision = 0;

  constructor(private readonly o: RemoteOptions) {
    super();
    this.req = requestOptions(o);
  }

  /** Connect and wait for the first full set; throws when the agent cannot be reached. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.first = { resolve, reject };
      this.connect();
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const make = this.req.https ? httpsRequest : httpRequest;
    let buf = '';
    let gotFirst = false;
    const fail = (e: Error) => this.fail(req, e);
    const req = make({ ...this.req.opts, method: 'GET' }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        fail(new Error(`the agent answered ${res.statusCode} to the services watch`));
        return;
      }
      res.setEncoding('utf8');
      this.armIdle();
      res.on('data', (chunk: string) => {
        this.armIdle();
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '') continue;
          try {
            this.apply(
              JSON.parse(line) as { revision: number; services: Record<string, ServiceEndpointRecord[]> },
              !gotFirst,
            );
          } catch (err) {
            this.o.log.warn({ err: (err as Error).message }, 'services watch: unreadable line');
            continue;
          }
          if (!gotFirst) {
            gotFirst = true;
            this.backoff.reset();
            if (!this.connected) this.o.log.info({ endpoint: this.o.endpoint }, 'services watch connected');
            this.connected = true;
            this.first?.resolve();
            this.first = undefined;
          }
        }
      });
      res.on('end', () => fail(new Error('the agent ended the services watch')));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
    this.current = req;
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(
      () => this.current?.destroy(new Error('no heartbeat from the agent')),
      this.o.idleTimeoutMs ?? 15_000,
    );
  }

  private fail(req: ClientRequest, err: Error): void {
    if (req !== this.current) return; // a late event of a request already given up
    clearTimeout(this.idle);
    this.current = undefined;
    req.destroy();
    if (this.stopped) return;
    if (this.first) {
      this.first.reject(err);
      this.first = undefined;
      this.stopped = true;
      return;
    }
    if (this.connected) {
      this.o.log.warn({ err: err.message }, 'services watch lost; keeping the last known endpoints');
    }
    this.connected = false;
    this.emit('error', err);
    this.retry = setTimeout(() => this.connect(), this.backoff.next());
  }

  private apply(
    msg: { revision: number; services: Record<string, ServiceEndpointRecord[]> },
    full: boolean,
  ): void {
    const changed = new Set<string>();
    if (full) {
      for (const s of this.byService.keys()) if (!(s in msg.services)) changed.add(s);
      for (const s of changed) this.byService.delete(s);
    }
    for (const [s, list] of Object.entries(msg.services)) {
      changed.add(s);
      if (list.length === 0) this.byService.delete(s);
      else this.byService.set(s, list);
    }
    this.revision = msg.revision;
    if (changed.size > 0) this.emit('changed', changed);
  }

  endpoints(service: string): ServiceEndpointRecord[] {
    return this.byService.get(service) ?? [];
  }

  services(): string[] {
    return [...this.byService.keys()].sort();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    clearTimeout(this.idle);
    this.current?.destroy();
    this.current = undefined;
  }
}
