/**
 * The web dashboard, a Subsystem hosted by the agent: `/ui/` on `dashboard_listen`.
 *
 *   POST   /ui/session     {"token"} → session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
 *   GET    /ui/session     {"role","csrf","who","terminal"} or 401
 *   DELETE /ui/session     log out
 *   *      /ui/api/PATH    proxied to the agent's own API socket at /PATH (fleet v1, /flotilla/v1/…):
 *                          GET/HEAD for any session; anything else needs operator + X-CSRF-Token
 *   GET    /ui/terminal/ID WebSocket: a shell on machine ID (operator; dashboard_terminal), relayed to
 *                          the API socket's terminal (src/dashboard/terminal.ts)
 *   GET    /ui/…           static assets from dist/ui (index.html for app routes)
 *
 * A verified client certificate (dashboard_cafile) is an operator session without a token.
 * INVARIANTS: nothing mutates on GET; no token or cookie value is logged; WebSocket upgrades from
 * another origin are refused; the API's logic is not duplicated here, requests go to its socket.
 */
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { parseHostPort, isLoopbackHost } from '../lib/net.js';
import { FlotillaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { harden, serverOptions, tlsOptions, type ListenerLimits } from '../api/limits.js';
import type { ReloadOutcome, Subsystem, SubsystemContext, SubsystemStatus } from '../daemon/subsystem.js';
import { redeemToken, safeEqual, sessionCookie, Sessions, type Session } from './auth.js';
import { serveStatic } from './static.js';
import { USER_HEADER } from './terminal.js';
import { handshakeProblem } from './websocket.js';

/** The agent config keys the dashboard reads (src/daemon/config.ts has their meaning and defaults). */
export interface DashboardConfig {
  dashboardListen?: string | undefined;
  dashboardCertfile?: string | undefined;
  dashboardKeyfile?: string | undefined;
  dashboardCafile?: string | undefined;
  dashboardTerminal: boolean;
  socketPath: string;
  dataDir: string;
}

const COOKIE = 'flotilla_session';
const MAX_LOGIN_BODY = 4096;
export const MAX_PROXY_BODY = 1024 * 1024;
const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(JSON.stringify(body));
}
const fail = (res: ServerResponse, status: number, message: string) =>
  json(res, status, { error: { code: status, message } });

function readSmall(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        resolve(undefined);
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(n > max ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class Dashboard implements Subsystem<DashboardConfig> {
  readonly name = 'dashboard';
  private server: Server | undefined;
  private cfg: DashboardConfig | undefined;
  private log: Logger | undefined;
  private tls = false;
  private loopback = false;
  private reason: string | undefined;
  readonly sessions = new Sessions();
  /** WebSockets (terminals): the HTTP server does not track upgraded sockets, stop() ends them. */
  private readonly upgraded = new Set<Duplex>();

  /** `limits`: the listener limits (src/api/limits.ts defaults, at most 512 connections). */
  constructor(private readonly limits: ListenerLimits = {}) {}

  async start(ctx: SubsystemContext<DashboardConfig>): Promise<void> {
    const c = ctx.config;
    this.cfg = c;
    this.log = ctx.log;
    const hp = c.dashboardListen ? parseHostPort(c.dashboardListen) : undefined;
    if (!hp)
      throw new FlotillaError('E_CONFIG', 'dashboard_listen: not host:port', { field: 'dashboard_listen' });
    this.tls = !!(c.dashboardCertfile && c.dashboardKeyfile);
    this.loopback = isLoopbackHost(hp.host);
    if (!this.tls && !this.loopback)
      throw new FlotillaError(
        'E_CONFIG',
        `dashboard_listen: ${hp.host} is not loopback: TLS required (dashboard_certfile, dashboard_keyfile)`,
        { field: 'dashboard_listen' },
      );
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log?.warn({ err: (err as Error).message }, 'dashboard: request failed');
        if (!res.headersSent) fail(res, 500, '');
        else res.destroy();
      });
    };
    const s = this.tls
      ? createHttpsServer(
          {
            cert: readFileSync(c.dashboardCertfile!),
            key: readFileSync(c.dashboardKeyfile!),
            ...(c.dashboardCafile
              ? { ca: readFileSync(c.dashboardCafile), requestCert: true, rejectUnauthorized: false }
              : {}),
            minVersion: 'TLSv1.2',
            ...serverOptions(),
            ...tlsOptions(this.limits),
          },
          onRequest,
        )
      : createHttpServer(serverOptions(), onRequest);
    // The API's listener limits (header, request, keep-alive, idle and handshake timeouts) with
    // its own cap; terminals (upgraded sockets) leave the HTTP server's timeouts.
    harden(s, { maxConnections: 512, log: ctx.log, name: 'dashboard', ...this.limits });
    s.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => this.upgrade(req, sock, head));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(hp.port, hp.host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    this.server = s;
    ctx.log.info({ listen: c.dashboardListen, tls: this.tls }, 'dashboard listening on /ui/');
  }

  /** The bound port (port 0 in tests). */
  port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  reload(next: DashboardConfig): Promise<ReloadOutcome> {
    const keys: [keyof DashboardConfig, string][] = [
      ['dashboardListen', 'dashboard_listen'],
      ['dashboardCertfile', 'dashboard_certfile'],
      ['dashboardKeyfile', 'dashboard_keyfile'],
      ['dashboardCafile', 'dashboard_cafile'],
      ['dashboardTerminal', 'dashboard_terminal'],
    ];
    const needRestart = keys.filter(([f]) => this.cfg?.[f] !== next[f]).map(([, k]) => k);
    return Promise.resolve({ applied: [], needRestart });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const sock of this.upgraded) sock.destroy();
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  status(): SubsystemStatus {
    if (this.reason) return { state: 'failed', reason: this.reason };
    return this.server
      ? { state: 'running', listen: this.cfg?.dashboardListen, tls: this.tls, sessions: this.sessions.size }
      : { state: 'stopped' };
  }

  /** Host header check (DNS rebinding): a loopback listener answers loopback names only. */
  private hostOk(req: IncomingMessage): boolean {
    if (!this.loopback) return true;
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return host === 'localhost' || isLoopbackHost(host);
  }

  /** Same origin: no Origin header (same-origin GET) or one naming this Host. */
  private originOk(req: IncomingMessage): boolean {
    const o = req.headers.origin;
    if (o === undefined) return true;
    try {
      const u = new URL(o);
      return u.host === req.headers.host && u.protocol === (this.tls ? 'https:' : 'http:');
    } catch {
      return false;
    }
  }

  private session(req: IncomingMessage): Session | undefined {
    const s = this.sessions.get(sessionCookie(req.headers.cookie, COOKIE));
    if (s) return s;
    const sock = req.socket as TLSSocket;
    if (this.tls && this.cfg?.dashboardCafile && sock.authorized) {
      const cert = sock.getPeerCertificate();
      if (cert?.fingerprint256)
        return this.sessions.forCertificate(cert.fingerprint256, String(cert.subject?.CN ?? '?'));
    }
    return undefined;
  }

  /**
   * WebSocket: `/ui/terminal/{machineID}` only (operator, dashboard_terminal on). The upgrade is
   * relayed to the agent's API socket (src/dashboard/terminal.ts), which hosts the shell or forwards
   * it to the machine's own agent; the two sockets are joined after its 101.
   */
  private upgrade(req: IncomingMessage, sock: Duplex, head: Buffer): void {
    sock.on('error', () => sock.destroy());
    this.upgraded.add(sock);
    sock.once('close', () => this.upgraded.delete(sock));
    const refuse = (code: number, text: string) => {
      sock.end(`HTTP/1.1 ${code} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!this.hostOk(req) || req.headers.origin === undefined || !this.originOk(req)) {
      this.log?.warn({ origin: req.headers.origin }, 'dashboard: WebSocket from another origin refused');
      return refuse(403, 'Forbidden');
    }
    const s = this.session(req);
    if (!s) return refuse(401, 'Unauthorized');
    const m = /^\/ui\/terminal\/([A-Za-z0-9_-]{1,64})$/.exec(new URL(req.url ?? '/', 'http://d').pathname);
    if (!m) return refuse(404, 'Not Found');
    if (!this.cfg?.dashboardTerminal) return refuse(404, 'Not Found');
    if (s.role !== 'operator') return refuse(403, 'Forbidden');
    const problem = handshakeProblem(req);
    if (problem) return refuse(400, 'Bad Request');
    const up = request({
      socketPath: this.cfg.socketPath,
      path: `/flotilla/v1/machines/${m[1]}/terminal`,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': String(req.headers['sec-websocket-key']),
        'Sec-WebSocket-Version': '13',
        [USER_HEADER]: `${s.who} (${s.role}) from ${req.socket.remoteAddress ?? '?'}`,
      },
    });
    up.on('upgrade', (res, api, apiHead) => {
      sock.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${String(res.headers['sec-websocket-accept'])}\r\n\r\n`,
      );
      if (apiHead.length) sock.write(apiHead);
      if (head.length) api.write(head);
      api.pipe(sock);
      sock.pipe(api);
      const kill = () => (api.destroy(), sock.destroy());
      api.on('close', kill);
      sock.on('close', kill);
      api.on('error', kill);
    });
    up.on('response', (res) => {
      res.resume();
      refuse(res.statusCode ?? 502, 'Bad Gateway');
    });
    up.on('error', () => refuse(502, 'Bad Gateway'));
    up.end();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const method = req.method ?? 'GET';
    if (!this.hostOk(req)) return fail(res, 421, 'unexpected Host header');
    if (url.pathname === '/' || url.pathname === '/ui') {
      res.writeHead(302, { Location: '/ui/' });
      return void res.end();
    }
    if (!url.pathname.startsWith('/ui/')) return fail(res, 404, 'not found');
    const path = url.pathname.slice(3);
    const safe = method === 'GET' || method === 'HEAD';
    if (!safe && !this.originOk(req)) return fail(res, 403, 'cross-origin request refused');
    if (path === '/session') return this.sessionRoute(req, res, method);
    if (path.startsWith('/api/')) {
      const s = this.session(req);
      if (!s) return fail(res, 401, 'not logged in');
      if (!safe) {
        if (s.role !== 'operator') return fail(res, 403, `the ${s.role} role cannot change anything`);
        const csrf = req.headers['x-csrf-token'];
        if (typeof csrf !== 'string' || !safeEqual(csrf, s.csrf))
          return fail(res, 403, 'missing or bad CSRF token');
      }
      return this.proxy(req, res, path.slice(4) + url.search, s);
    }
    if (!safe) return fail(res, 405, 'only GET supported against this resource');
    return serveStatic(res, path, SECURITY_HEADERS);
  }

  /** What the page learns of its session (`terminal`: whether this dashboard offers one). */
  private sessionBody(s: Session) {
    return { role: s.role, csrf: s.csrf, who: s.who, terminal: this.cfg?.dashboardTerminal === true };
  }

  private async sessionRoute(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    const secure = this.tls ? '; Secure' : '';
    if (method === 'GET') {
      const s = this.session(req);
      return s ? json(res, 200, this.sessionBody(s)) : fail(res, 401, 'not logged in');
    }
    if (method === 'POST') {
      const body = await readSmall(req, MAX_LOGIN_BODY);
      if (!body) return fail(res, 413, 'request body too large');
      let token: unknown;
      try {
        token = (JSON.parse(body.toString('utf8')) as { token?: unknown }).token;
      } catch {
        return fail(res, 400, 'body: expected {"token": "…"}');
      }
      const role = typeof token === 'string' ? redeemToken(this.cfg!.dataDir, token) : undefined;
      if (!role) {
        this.log?.warn(
          { remote: req.socket.remoteAddress },
          'dashboard: login refused (bad, used or expired token)',
        );
        return fail(
          res,
          401,
          'the login token is invalid, used or expired: run `flotilla dashboard login-url` again',
        );
      }
      const s = this.sessions.create(role, 'token');
      this.log?.info({ role, remote: req.socket.remoteAddress }, 'dashboard: login');
      return json(res, 200, this.sessionBody(s), {
        'Set-Cookie': `${COOKIE}=${s.id}; Path=/ui/; HttpOnly; SameSite=Strict${secure}`,
      });
    }
    if (method === 'DELETE') {
      const s = this.session(req);
      const csrf = req.headers['x-csrf-token'];
      if (!s || typeof csrf !== 'string' || !safeEqual(csrf, s.csrf))
        return fail(res, 403, 'missing or bad CSRF token');
      if (s.id) this.sessions.delete(s.id);
      res.writeHead(204, {
        'Set-Cookie': `${COOKIE}=; Path=/ui/; Max-Age=0; HttpOnly; SameSite=Strict${secure}`,
      });
      return void res.end();
    }
    res.writeHead(405, { Allow: 'GET, POST, DELETE' });
    res.end();
  }

  /** Forward to the agent's API socket; streams (events, journal) flow with backpressure. */
  private proxy(req: IncomingMessage, res: ServerResponse, path: string, s: Session): Promise<void> {
    const len = Number(req.headers['content-length'] ?? 0);
    if (len > MAX_PROXY_BODY) {
      req.resume();
      fail(res, 413, `request body too large (max ${MAX_PROXY_BODY} bytes)`);
      return Promise.resolve();
    }
    const headers: Record<string, string> = {};
    for (const h of ['content-type', 'content-length', 'accept']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      this.log?.info({ who: s.who, method: req.method, path: path.split('?')[0] }, 'dashboard: change');
    return new Promise((resolve) => {
      const up = request({ socketPath: this.cfg!.socketPath, path, method: req.method, headers }, (r) => {
        const out: Record<string, string> = { ...SECURITY_HEADERS, 'Cache-Control': 'no-store' };
        for (const h of ['content-type', 'allow']) {
          const v = r.headers[h];
          if (typeof v === 'string') out[h] = v;
        }
        res.writeHead(r.statusCode ?? 502, out);
        res.flushHeaders();
        r.pipe(res);
        r.on('end', resolve);
        r.on('error', () => (res.destroy(), resolve()));
      });
      up.on('error', () => {
        if (!res.headersSent) fail(res, 502, 'the agent API cannot be reached');
        else res.destroy();
        resolve();
      });
      res.on('close', () => up.destroy());
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_PROXY_BODY) {
          up.destroy();
          if (!res.headersSent) fail(res, 413, `request body too large (max ${MAX_PROXY_BODY} bytes)`);
        }
      });
      req.pipe(up);
    });
  }
}
