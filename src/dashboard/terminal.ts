/**
 * The dashboard's terminal, hosted by the agent's API (an upgrade handler of ApiServer):
 *
 *   GET /flotilla/v1/machines/{id}/terminal   Upgrade: websocket
 *
 * For this machine: a login shell in a pseudo-terminal (node-pty), spoken over the WebSocket:
 *   client → server  text JSON {"type":"input","data":"…"} | {"type":"resize","cols":N,"rows":N}
 *   server → client  text frames with the terminal's output (UTF-8, escape sequences included)
 * For another machine: the request is relayed to that machine's agent (its peer API address from
 * the registry, mutual TLS with this agent's certificate, header X-Flotilla-Forwarded), and the two
 * sockets are joined after its 101. When the machine is not in the cluster, cannot be reached or has
 * the terminal off, the WebSocket is still accepted and closed at once with a 44xx/45xx code whose
 * reason says so (a browser sees close codes and reasons, not HTTP error bodies).
 *
 * Who may: the unix socket (root only, the dashboard's own channel) and, over TCP, an `agent` that
 * forwards (X-Flotilla-Forwarded) or an `operator` certificate. The dashboard checks the operator
 * role, origin and CSRF-free WebSocket rules before it gets here. Off unless `dashboard_terminal` on
 * the machine whose shell it is. Every session is an audit line in the agent's journal at start and
 * at end (who, machine, from where, duration). The shell gets a clean environment, never the agent's.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from '../lib/log.js';
import type { Role } from '../api/roles.js';
import type { Registry } from '../registry/registry.js';
import type { PeerTls } from '../api/unit-logs.js';
import { handshakeProblem, WebSocketConn } from './websocket.js';

export const TERMINAL_PATH = /^\/flotilla\/v1\/machines\/([A-Za-z0-9_-]{1,64})\/terminal$/;
export const USER_HEADER = 'x-flotilla-user';
const FORWARDED = 'x-flotilla-forwarded';
/** Close codes (4000–4999 are the application's). */
export const CLOSE = { off: 4403, gone: 4404, unreachable: 4502, unavailable: 4503, bad: 1003 } as const;
const MAX_SESSIONS = 8;

export interface TerminalDeps {
  machineID: string;
  /** `dashboard_terminal` of this machine. */
  enabled: boolean;
  registry: Pick<Registry, 'listMachines'>;
  peerTls?: PeerTls | undefined;
  log: Logger;
  /** The shell, argv; default a login bash (or sh). */
  shell?: string[];
  connectTimeoutMs?: number;
}

interface Pty {
  onData(cb: (d: string) => void): void;
  onExit(cb: (e: { exitCode: number }) => void): void;
  write(d: string): void;
  resize(c: number, r: number): void;
  kill(sig?: string): void;
}
type Spawn = (file: string, args: string[], o: Record<string, unknown>) => Pty;

let spawnPty: Promise<Spawn | string> | undefined;
/** node-pty is an optional dependency: loaded on first use, its absence is a message. */
function loadPty(): Promise<Spawn | string> {
  spawnPty ??= import('node-pty').then(
    (m) => (m as unknown as { spawn: Spawn }).spawn,
    (err: unknown) => `node-pty cannot be loaded on this machine (${(err as Error).message})`,
  );
  return spawnPty;
}

function refuse(sock: Duplex, code: number, text: string, message: string): void {
  sock.end(
    `HTTP/1.1 ${code} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}

/** Parse one client message; a string is what is wrong with it. */
export function parseClientMessage(
  raw: string,
): { type: 'input'; data: string } | { type: 'resize'; cols: number; rows: number } | string {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return 'message: not JSON';
  }
  const o = (m ?? {}) as Record<string, unknown>;
  if (o.type === 'input')
    return typeof o.data === 'string' ? { type: 'input', data: o.data } : 'input: data must be a string';
  if (o.type === 'resize') {
    for (const k of ['cols', 'rows'] as const)
      if (!Number.isInteger(o[k]) || (o[k] as number) < 1 || (o[k] as number) > 1000)
        return `resize: ${k} must be an integer from 1 to 1000`;
    return { type: 'resize', cols: o.cols as number, rows: o.rows as number };
  }
  return 'message: type must be "input" or "resize"';
}

export class TerminalHost {
  private sessions = 0;
  constructor(private readonly d: TerminalDeps) {}

  /** ApiServer's upgrade hook: false when the path is not the terminal's. */
  upgrade(req: IncomingMessage, sock: Duplex, head: Buffer, roles: ReadonlySet<Role>, tcp: boolean): boolean {
    const path = new URL(req.url ?? '/', 'http://flotilla').pathname;
    const m = TERMINAL_PATH.exec(path);
    if (!m) return false;
    const forwardedFrom = tcp ? req.headers[FORWARDED] : undefined;
    const allowed =
      !tcp || roles.has('operator') || (roles.has('agent') && typeof forwardedFrom === 'string');
    if (!allowed) {
      refuse(sock, 403, 'Forbidden', 'the terminal needs the operator role (or an agent forwarding)');
      return true;
    }
    const problem = handshakeProblem(req);
    if (problem) {
      refuse(sock, 400, 'Bad Request', problem);
      return true;
    }
    const target = m[1]!;
    const user = String(req.headers[USER_HEADER] ?? (tcp ? 'certificate' : 'local socket')).slice(0, 200);
    const from = typeof forwardedFrom === 'string' ? forwardedFrom.slice(0, 64) : undefined;
    if (target === this.d.machineID) void this.local(req, sock, head, user, from);
    else if (from) {
      // Never forwarded twice: a peer asked us for a machine that is not us.
      const ws = WebSocketConn.accept(req, sock, head);
      ws.close(CLOSE.gone, `machine ${target} is not this agent (${this.d.machineID})`);
    } else void this.forward(req, sock, head, target, user);
    return true;
  }

  private async local(req: IncomingMessage, sock: Duplex, head: Buffer, user: string, from?: string) {
    // Loaded before the WebSocket is accepted: no message may arrive before its listener.
    const spawn = this.d.enabled ? await loadPty() : undefined;
    const ws = WebSocketConn.accept(req, sock, head);
    if (!this.d.enabled)
      return ws.close(CLOSE.off, `the terminal is off on machine ${this.d.machineID} (dashboard_terminal)`);
    if (this.sessions >= MAX_SESSIONS)
      return ws.close(CLOSE.unavailable, `too many terminal sessions on this machine (${MAX_SESSIONS})`);
    if (spawn === undefined) return ws.close(CLOSE.off, 'the terminal is off');
    if (typeof spawn === 'string') return ws.close(CLOSE.unavailable, spawn.slice(0, 120));
    const shell = this.d.shell ?? (existsSync('/bin/bash') ? ['/bin/bash', '-l'] : ['/bin/sh', '-l']);
    let pty: Pty;
    try {
      pty = spawn(shell[0]!, shell.slice(1), {
        name: 'xterm-256color',
        cols: 80,
        rows: 24,
        cwd: existsSync('/root') ? '/root' : '/',
        // A clean environment: nothing of the agent's (its config, tokens) reaches the shell.
        env: {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          HOME: existsSync('/root') ? '/root' : '/',
          TERM: 'xterm-256color',
          LANG: 'C.UTF-8',
          SHELL: shell[0]!,
        },
      });
    } catch (err) {
      return ws.close(CLOSE.unavailable, `cannot start a shell: ${(err as Error).message}`.slice(0, 120));
    }
    this.sessions++;
    const t0 = Date.now();
    const audit = { audit: 'terminal', who: user, machine: this.d.machineID, ...(from ? { from } : {}) };
    this.d.log.info({ ...audit, event: 'start' }, 'dashboard terminal: session start');
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      this.sessions--;
      this.d.log.info(
        { ...audit, event: 'end', why, seconds: Math.round((Date.now() - t0) / 1000) },
        'dashboard terminal: session end',
      );
    };
    pty.onData((d) => ws.send(d));
    pty.onExit(({ exitCode }) => {
      end(`shell exited ${exitCode}`);
      ws.close(1000, `shell exited ${exitCode}`);
    });
    ws.on('message', (data) => {
      const msg = parseClientMessage(data.toString('utf8'));
      if (typeof msg === 'string') return ws.close(CLOSE.bad, msg);
      if (msg.type === 'input') pty.write(msg.data);
      else pty.resize(msg.cols, msg.rows);
    });
    ws.on('close', () => {
      end('client closed');
      try {
        pty.kill('SIGHUP');
      } catch {
        /* gone already */
      }
    });
  }

  /** Join the client to the terminal of `target`'s agent (mutual TLS), or say why not. */
  private async forward(req: IncomingMessage, sock: Duplex, head: Buffer, target: string, user: string) {
    const fail = (code: number, why: string) =>
      WebSocketConn.accept(req, sock, head).close(code, why.slice(0, 120));
    let rec;
    try {
      rec = (await this.d.registry.listMachines()).find((x) => x.id === target);
    } catch (err) {
      return fail(CLOSE.unavailable, `the registry cannot be read: ${(err as Error).message}`);
    }
    if (!rec) return fail(CLOSE.gone, `machine ${target} is down or not in the cluster`);
    const who = `machine ${target} (${rec.publicIP})`;
    if (!rec.api) return fail(CLOSE.unreachable, `${who} publishes no peer API address (api_listen)`);
    const tls = this.d.peerTls;
    if (!tls) return fail(CLOSE.unreachable, `${who}: this agent has no TLS identity for peers`);
    let ca: Buffer, cert: Buffer, key: Buffer;
    try {
      [ca, cert, key] = [readFileSync(tls.ca), readFileSync(tls.cert), readFileSync(tls.key)];
    } catch (err) {
      return fail(CLOSE.unreachable, `cannot read this agent's TLS files: ${(err as Error).message}`);
    }
    const i = rec.api.lastIndexOf(':');
    const out = httpsRequest({
      host: rec.api.slice(0, i).replace(/^\[(.*)\]$/, '$1'),
      port: Number(rec.api.slice(i + 1)),
      method: 'GET',
      path: req.url,
      ca,
      cert,
      key,
      minVersion: 'TLSv1.2',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': String(req.headers['sec-websocket-key']),
        'Sec-WebSocket-Version': '13',
        [FORWARDED]: this.d.machineID,
        [USER_HEADER]: user,
      },
    });
    const ms = this.d.connectTimeoutMs ?? 5000;
    const timer = setTimeout(() => out.destroy(new Error(`no answer within ${ms} ms`)), ms);
    let done = false;
    const once = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn();
    };
    out.on('upgrade', (res, peer, peerHead) =>
      once(() => {
        sock.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${String(res.headers['sec-websocket-accept'])}\r\n\r\n`,
        );
        if (peerHead.length) sock.write(peerHead);
        if (head.length) peer.write(head);
        peer.pipe(sock);
        sock.pipe(peer);
        const kill = () => (peer.destroy(), sock.destroy());
        peer.on('close', kill);
        sock.on('close', kill);
        peer.on('error', kill);
        sock.on('error', kill);
      }),
    );
    out.on('response', (res) =>
      once(() => {
        res.resume();
        fail(CLOSE.unreachable, `${who} refused the terminal (HTTP ${res.statusCode})`);
      }),
    );
    out.on('error', (err) => once(() => fail(CLOSE.unreachable, `${who} is unreachable: ${err.message}`)));
    sock.on('close', () => out.destroy());
    out.end();
  }
}
