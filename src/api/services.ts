/**
 * Service discovery over HTTP, read-only:
 *
 *   GET /flotilla/v1/services               {"revision":R,"services":[{"name","endpoints":[…]}]}
 *   GET /flotilla/v1/services/NAME          {"name","revision","endpoints":[…]}; 404 when none
 *   GET /flotilla/v1/services?watch=true    NDJSON: first every service, then on each change
 *                                           {"revision":R,"services":{"NAME":[…endpoints]}} with the
 *                                           full list of each changed service ([] = gone); an empty
 *                                           `services` object every 5 s as a heartbeat
 *   GET /v2/keys/[NAME[/KEY]]               etcd v2's shape, for clients that only speak HTTP (the
 *                                           seeds' `curl http://127.0.0.1:4001/v2/keys/database`):
 *                                           a directory per service, one node per usable endpoint,
 *                                           value "IP:PORT"; 404 errorCode 100 when absent
 *
 * An endpoint is the registry record (service, machineID, ip, port, container, unit, health,
 * registered) plus `address` ("IP:PORT"). The v2 shape lists only endpoints that may get traffic
 * (health `none` or `healthy`); the flotilla shape lists every one with its health.
 *
 * `ServicesHttpServer` serves these routes, and nothing else, on a plain-HTTP loopback listener
 * (config `services_listen`, e.g. 127.0.0.1:4001); a non-loopback address is refused.
 */
import { createServer, type Server } from 'node:http';
import { FlotillaError } from '../lib/errors.js';
import { AsyncQueue } from '../lib/queue.js';
import type { EndpointEntry, Registry } from '../registry/registry.js';
import { isServiceName, type ServiceEndpointRecord } from '../registry/types.js';
import type { ServicesView } from '../discovery/services-view.js';
import { endpointAddress, isUsable } from '../discovery/services.js';
import { isLoopbackHost, parseHostPort } from '../lib/net.js';
import { HttpError, send, toErrorResponse, type ApiRequest, type ApiResponse } from './http.js';
import { dispatch } from './server.js';
import { harden, serverOptions, type ListenerLimits } from './limits.js';

export type ApiEndpoint = ServiceEndpointRecord & { address: string };

export interface ApiService {
  name: string;
  endpoints: ApiEndpoint[];
}

/** Heartbeat interval of the watch stream; a client that saw nothing for 3× this may reconnect. */
export const WATCH_HEARTBEAT_MS = 5000;

function toApi(r: ServiceEndpointRecord): ApiEndpoint {
  return { ...r, address: endpointAddress(r) };
}

function group(entries: EndpointEntry[]): ApiService[] {
  const by = new Map<string, ApiEndpoint[]>();
  for (const e of entries) {
    let l = by.get(e.record.service);
    if (!l) by.set(e.record.service, (l = []));
    l.push(toApi(e.record));
  }
  return [...by.keys()].sort().map((name) => ({ name, endpoints: by.get(name)! }));
}

function serviceName(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `invalid service name ${JSON.stringify(raw)}`);
  }
  if (!isServiceName(name)) {
    throw new FlotillaError('E_SERVICE_SPEC', `invalid service name ${JSON.stringify(name)}`, {
      field: 'service',
    });
  }
  return name;
}

/** Default per-client watch backlog (bytes queued, not yet taken by the socket). */
export const WATCH_MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

export class ServicesApi {
  constructor(
    private readonly registry: Registry,
    /** Needed for `?watch=true`; without it the stream is not offered (501). */
    private readonly view?: ServicesView,
    private readonly maxBacklogBytes = WATCH_MAX_BACKLOG_BYTES,
  ) {}

  async route(req: ApiRequest): Promise<ApiResponse | undefined> {
    const flo = /^\/flotilla\/v1\/services(?:\/([^/]+))?\/?$/.exec(req.path);
    const v2 = /^\/v2\/keys(\/.*)?$/.exec(req.path);
    if (!flo && !v2) return undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return {
        status: 405,
        body: { error: { code: 405, message: 'services are read-only: only GET is supported' } },
        headers: { Allow: 'GET, HEAD' },
      };
    }
    if (v2) return this.v2(v2[1] ?? '/', req.query);
    const name = flo![1];
    if (name === undefined) {
      const w = req.query.get('watch');
      if (w === 'true' || w === '1') return this.watch();
      const { revision, entries } = await this.registry.listEndpoints();
      return { status: 200, body: { revision, services: group(entries) } };
    }
    const service = serviceName(name);
    const { revision, entries } = await this.registry.listEndpoints(service);
    if (entries.length === 0) throw new HttpError(404, `service ${service} has no endpoints`);
    return { status: 200, body: { name: service, revision, endpoints: entries.map((e) => toApi(e.record)) } };
  }

  private watch(): ApiResponse {
    const view = this.view;
    if (!view) throw new HttpError(501, 'this server does not offer a watch of the services');
    const line = (services: Iterable<string>) => {
      const out: Record<string, ApiEndpoint[]> = {};
      for (const s of services) out[s] = view.endpoints(s).map(toApi);
      return `${JSON.stringify({ revision: view.revision, services: out })}\n`;
    };
    // Bounded backlog: bytes produced for this client and not yet taken by its socket. A client
    // that does not read (or reads too slowly) gets an `overflow` line and the end of the stream,
    // as /flotilla/v1/events does; it reconnects and starts again from the full set.
    const max = this.maxBacklogBytes;
    let queued = 0;
    const push = (s: string) => {
      if (q.closed) return;
      queued += s.length;
      if (queued > max) {
        stop();
        q.push(`${JSON.stringify({ kind: 'overflow', revision: view.revision })}\n`);
        q.end();
        return;
      }
      q.push(s);
    };
    const onChanged = (names: Set<string>) => push(line(names));
    const heartbeat = setInterval(() => push(line([])), WATCH_HEARTBEAT_MS);
    heartbeat.unref();
    const stop = () => {
      clearInterval(heartbeat);
      view.off('changed', onChanged);
    };
    const q = new AsyncQueue<string>(stop);
    view.on('changed', onChanged);
    push(line(view.services()));
    async function* stream(): AsyncGenerator<string> {
      try {
        for await (const s of q) {
          queued -= s.length;
          yield s;
        }
      } finally {
        stop();
        await q.return();
      }
    }
    return { status: 200, stream: stream() };
  }

  private async v2(path: string, query: URLSearchParams): Promise<ApiResponse> {
    const parts = path.split('/').filter((p) => p !== '');
    const recursive = query.get('recursive') === 'true';
    const { revision, entries: all } = await this.registry.listEndpoints(
      parts[0] !== undefined && isServiceName(safeDecode(parts[0])) ? safeDecode(parts[0]) : undefined,
    );
    const headers = { 'X-Etcd-Index': String(revision) };
    const entries = all.filter((e) => isUsable(e.record.health));
    const notFound = (): ApiResponse => ({
      status: 404,
      headers,
      body: { errorCode: 100, message: 'Key not found', cause: `/${parts.join('/')}`, index: revision },
    });
    const leaf = (e: EndpointEntry, service: string) => ({
      key: `/${service}/${e.key.slice(e.key.lastIndexOf('/') + 1)}`,
      value: endpointAddress(e.record),
      modifiedIndex: e.modRevision,
      createdIndex: e.createRevision,
    });
    const dir = (service: string, list: EndpointEntry[], withNodes: boolean) => ({
      key: `/${service}`,
      dir: true,
      ...(withNodes ? { nodes: list.map((e) => leaf(e, service)) } : {}),
      modifiedIndex: Math.min(...list.map((e) => e.createRevision)),
      createdIndex: Math.min(...list.map((e) => e.createRevision)),
    });
    const byService = new Map<string, EndpointEntry[]>();
    for (const e of entries) {
      let l = byService.get(e.record.service);
      if (!l) byService.set(e.record.service, (l = []));
      l.push(e);
    }
    if (parts.length === 0) {
      const nodes = [...byService.keys()].sort().map((s) => dir(s, byService.get(s)!, recursive));
      return { status: 200, headers, body: { action: 'get', node: { dir: true, nodes } } };
    }
    const service = safeDecode(parts[0]!);
    const list = byService.get(service);
    if (!list || parts.length > 2) return notFound();
    if (parts.length === 1)
      return { status: 200, headers, body: { action: 'get', node: dir(service, list, true) } };
    const key = safeDecode(parts[1]!);
    const e = list.find((x) => x.key.endsWith(`/${key}`));
    if (!e) return notFound();
    return { status: 200, headers, body: { action: 'get', node: leaf(e, service) } };
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export const SERVICES_MAX_CONNECTIONS = 256;

/**
 * The read-only services listener: plain HTTP, loopback only, the ServicesApi routes and nothing
 * else (no unit or machine API without the socket's permissions or mutual TLS).
 */
export class ServicesHttpServer {
  private server: Server | undefined;

  constructor(
    private readonly api: ServicesApi,
    /** Connection cap and timeouts (src/api/limits.ts); maxConnections defaults to 256. */
    private readonly limits: ListenerLimits = {},
  ) {}

  /** Listen on `host:port` (a loopback address); throws E_CONFIG for anything else. */
  async listen(address: string): Promise<void> {
    const hp = parseHostPort(address);
    if (!hp || !isLoopbackHost(hp.host)) {
      throw new FlotillaError(
        'E_CONFIG',
        `services_listen: ${JSON.stringify(address)} must be a loopback host:port (127.0.0.1:4001, [::1]:4001): it serves plain HTTP without authentication`,
        { field: 'services_listen' },
      );
    }
    const server = createServer(serverOptions(), (req, res) => {
      const ac = new AbortController();
      res.once('close', () => ac.abort());
      void (async () => {
        let r: ApiResponse;
        try {
          const url = new URL(req.url ?? '/', 'http://flotilla');
          r = await dispatch([(q) => this.api.route(q)], {
            method: req.method ?? 'GET',
            path: url.pathname,
            query: url.searchParams,
            headers: req.headers,
            body: Buffer.alloc(0),
            signal: ac.signal,
          });
        } catch (err) {
          r = toErrorResponse(err);
        }
        await send(res, r).catch(() => res.destroy());
      })();
    });
    harden(server, { maxConnections: SERVICES_MAX_CONNECTIONS, ...this.limits });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(hp.port, hp.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
    this.server = undefined;
  }
}
