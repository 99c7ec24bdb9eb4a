/**
 * The agent's API server: fleet's v1 API plus flotilla's extensions, on
 *   - a unix socket (default /var/run/fleet.sock), mode 0600: root only;
 *   - sockets passed by systemd socket activation (LISTEN_FDS/LISTEN_PID), used instead when present;
 *   - optionally TCP, only with TLS and required client certificates (mutual TLS).
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { countApiRequest } from '../lib/metrics.js';
import {
  HttpError,
  methodNotAllowed,
  readBody,
  send,
  toErrorResponse,
  type ApiRequest,
  type ApiResponse,
} from './http.js';
import { harden, serverOptions, tlsOptions, type ListenerLimits } from './limits.js';
import { certRoles, refusal, type Role } from './roles.js';
import { checkTlsIdentity, readTlsFiles } from './tls-files.js';

export type Handler = (req: ApiRequest) => Promise<ApiResponse | undefined>;

/**
 * An HTTP Upgrade (WebSocket) request: true when it took the socket (answered or joined), false when
 * the path is not its own (then 404). `roles` as for requests; `tcp` = the mutual-TLS listener.
 */
export type UpgradeHandler = (
  req: IncomingMessage,
  sock: Duplex,
  head: Buffer,
  roles: ReadonlySet<Role>,
  tcp: boolean,
) => boolean;

export interface ListenOptions {
  socketPath?: string;
  tcp?: { host: string; port: number; ca: string; cert: string; key: string };
  /** Sockets from systemd (fd numbers); when given, socketPath is not bound. */
  activationFds?: number[];
  /** Connection cap and timeouts (limits.ts defaults), and the logger for refused connections. */
  limits?: ListenerLimits;
}

/** Turn a node request into an ApiRequest and dispatch it through the handlers in order. */
export async function dispatch(handlers: Handler[], req: ApiRequest): Promise<ApiResponse> {
  try {
    if (req.path === '/') throw methodNotAllowed(['GET']);
    for (const h of handlers) {
      const r = await h(req);
      if (r) return r;
    }
    throw new HttpError(404, 'not found');
  } catch (err) {
    return toErrorResponse(err);
  }
}

const OPERATOR: ReadonlySet<Role> = new Set<Role>(['operator']);

function listener(handlers: Handler[], tls: boolean) {
  return (req: IncomingMessage, res: ServerResponse) => {
    // mTLS: the certificate is verified by the TLS layer; what it may do is decided here.
    const roles = tls ? certRoles((req.socket as TLSSocket).getPeerCertificate()) : OPERATOR;
    // Aborted when the client goes away before the response is complete: streams stop, children die.
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    void (async () => {
      let r: ApiResponse;
      try {
        const url = new URL(req.url ?? '/', 'http://flotilla');
        const denied = refusal(roles, req.method ?? 'GET', url.pathname);
        if (denied !== undefined) throw new HttpError(403, denied);
        const body = req.method === 'GET' || req.method === 'HEAD' ? Buffer.alloc(0) : await readBody(req);
        r = await dispatch(handlers, {
          method: req.method ?? 'GET',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body,
          signal: ac.signal,
          roles,
        });
      } catch (err) {
        r = toErrorResponse(err);
      }
      countApiRequest(req.method ?? 'GET', r.status);
      await send(res, r).catch(() => res.destroy());
    })();
  };
}

/** systemd socket activation: the fds passed to this process, or [] (sd_listen_fds(3)). */
export function activationFds(env = process.env): number[] {
  if (env.LISTEN_PID !== String(process.pid)) return [];
  const n = Number(env.LISTEN_FDS ?? 0);
  return Array.from({ length: n }, (_, i) => 3 + i);
}

export class ApiServer {
  private readonly servers: Server[] = [];
  private socketPath: string | undefined;
  private readonly upgraded = new Set<Duplex>();
  private tls?: { server: HttpsServer; files: { ca: string; cert: string; key: string } };

  constructor(
    private readonly handlers: Handler[],
    private readonly upgradeHandler?: UpgradeHandler,
  ) {}

  /** Upgrade requests go to the handler, or get 404. */
  private onUpgrade(s: Server, tcp: boolean): Server {
    s.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => {
      sock.on('error', () => sock.destroy());
      // Upgraded sockets leave the HTTP server's books: close() ends them itself.
      this.upgraded.add(sock);
      sock.once('close', () => this.upgraded.delete(sock));
      const roles = tcp ? certRoles((req.socket as TLSSocket).getPeerCertificate()) : OPERATOR;
      if (this.upgradeHandler?.(req, sock, head, roles, tcp)) return;
      sock.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    return s;
  }

  async listen(opts: ListenOptions): Promise<void> {
    const onRequest = listener(this.handlers, false);
    const fds = opts.activationFds ?? [];
    const limits = opts.limits ?? {};
    const local = { ...limits, name: limits.name ?? 'api socket' };
    if (fds.length > 0) {
      for (const fd of fds) {
        const s = this.onUpgrade(harden(createHttpServer(serverOptions(), onRequest), local), false);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ fd }, () => resolve());
        });
        this.servers.push(s);
      }
    } else if (opts.socketPath) {
      const path = opts.socketPath;
      mkdirSync(dirname(path), { recursive: true });
      rmSync(path, { force: true });
      const s = this.onUpgrade(harden(createHttpServer(serverOptions(), onRequest), local), false);
      // Created 0600 (umask 0177 around bind), so there is no moment where others may connect.
      const old = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(path, () => resolve());
        });
      } finally {
        process.umask(old);
      }
      chmodSync(path, 0o600);
      this.socketPath = path;
      this.servers.push(s);
    }
    if (opts.tcp) {
      const t = opts.tcp;
      const s = createHttpsServer(
        {
          ...serverOptions(),
          ...tlsOptions(limits),
          ...readTlsFiles(t),
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
        },
        listener(this.handlers, true),
      );
      this.onUpgrade(harden(s, { ...limits, name: limits.name ?? 'api_listen' }), true);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(t.port, t.host, () => resolve());
      });
      this.servers.push(s);
      this.tls = { server: s, files: t };
    }
  }

  /**
   * Certificate rotation without a restart (SIGHUP): the mutual-TLS listener reads its CA bundle,
   * certificate and key again; new connections use them, open ones keep theirs. The files are
   * checked first (readable, key matches certificate, CA parses): on an error nothing changes and
   * the error names the file. Returns false when there is no TLS listener.
   */
  reloadTls(): boolean {
    if (!this.tls) return false;
    const files = this.tls.files;
    const pem = readTlsFiles(files);
    checkTlsIdentity(files, pem);
    try {
      // What setSecureContext will build, built first: OpenSSL's own checks, before anything changes.
      createSecureContext({ ...pem, minVersion: 'TLSv1.2' });
    } catch (err) {
      throw new Error(
        `api_certfile ${files.cert}, api_keyfile ${files.key}, api_cafile ${files.ca}: not usable by TLS: ${(err as Error).message}`,
      );
    }
    this.tls.server.setSecureContext({ ...pem, minVersion: 'TLSv1.2' });
    return true;
  }

  /** The TCP port actually bound (for port 0 in tests). */
  tcpPort(): number | undefined {
    for (const s of this.servers) {
      const a = s.address();
      if (a && typeof a === 'object') return a.port;
    }
    return undefined;
  }

  async close(): Promise<void> {
    for (const sock of this.upgraded) sock.destroy();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    this.servers.length = 0;
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }
}

/** `host:port` (IPv6 in brackets) → parts; the host without brackets. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(i + 1)) };
}

/** The peer API address an agent publishes: its listen address, or its public IP for a wildcard. */
export function advertisedAddress(listen: string, publicIP: string): string {
  const { host, port } = parseListen(listen);
  const h = host === '' || host === '0.0.0.0' || host === '::' ? publicIP : host;
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}
