/**
 * The dashboard's terminal over real sockets: a browser-like WebSocket client (raw TCP, masked
 * frames as RFC 6455 demands) → the Dashboard on 127.0.0.1 → the agent's real API socket, whose
 * TerminalHost runs a real shell in a pseudo-terminal (node-pty). Origin, role and "off" refusals,
 * the audit lines, closes with a reason for a machine that is not there, and the frame parser.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../../src/dashboard/auth.js';
import { Dashboard } from '../../../src/dashboard/server.js';
import { CLOSE, TerminalHost, parseClientMessage } from '../../../src/dashboard/terminal.js';
import { WebSocketConn, acceptKey } from '../../../src/dashboard/websocket.js';
import { startAgent, type Agent } from '../api/harness.js';

const ME = 'a'.repeat(32);
const lines: { obj: Record<string, unknown>; msg: string }[] = [];
const log = {
  info: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }),
  warn() {},
  error() {},
  debug() {},
} as never;

/** A masked client frame. */
function frame(opcode: number, payload: Buffer, fin = true, masked = true): Buffer {
  const mask = randomBytes(4);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0, n]) : Buffer.from([0, 126, n >> 8, n & 255]);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (!masked) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, mask, body]);
}

/** Server frames (unmasked, small) from a byte stream. */
function frames(buf: Buffer): { opcode: number; payload: Buffer }[] {
  const out = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    let len = buf[off + 1]! & 0x7f;
    let p = off + 2;
    if (len === 126) {
      len = buf.readUInt16BE(off + 2);
      p = off + 4;
    }
    if (p + len > buf.length) break;
    out.push({ opcode: buf[off]! & 0x0f, payload: buf.subarray(p, p + len) });
    off = p + len;
  }
  return out;
}

interface Client {
  status: number;
  sock: Socket;
  /** Text of every text frame so far. */
  text(): string;
  closeFrame(): { code: number; reason: string } | undefined;
  send(o: unknown): void;
  raw(b: Buffer): void;
}

function wsConnect(port: number, path: string, headers: Record<string, string>): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0);
    let status = 0;
    let body = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      if (status) {
        body = Buffer.concat([body, c]);
        return;
      }
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      const head = buf.subarray(0, i).toString();
      status = Number(head.split(' ')[1]);
      if (status === 101) expect(head).toContain(`Sec-WebSocket-Accept: ${acceptKey(key)}`);
      body = buf.subarray(i + 4);
      resolve({
        status,
        sock,
        text: () =>
          frames(body)
            .filter((f) => f.opcode === 1)
            .map((f) => f.payload.toString())
            .join(''),
        closeFrame: () => {
          const f = frames(body).find((x) => x.opcode === 8);
          return f && { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() };
        },
        send: (o) => sock.write(frame(1, Buffer.from(JSON.stringify(o)))),
        raw: (b) => sock.write(b),
      });
    });
    sock.write(
      [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`,
        'Sec-WebSocket-Version: 13',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n'),
    );
  });
}

async function until<T>(f: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('dashboard terminal', () => {
  let agent: Agent;
  let dash: Dashboard;
  let offDash: Dashboard;
  let port: number;
  const host = { enabled: true };

  beforeAll(async () => {
    const ref: { terminal?: TerminalHost } = {};
    agent = await startAgent({
      machineID: ME,
      upgrade: (req, sock, head, roles, tcp) => ref.terminal!.upgrade(req, sock, head, roles, tcp),
    });
    ref.terminal = new TerminalHost({
      machineID: ME,
      get enabled() {
        return host.enabled;
      },
      registry: agent.registry,
      log,
      shell: ['/bin/sh'],
    });
    const start = async (on: boolean) => {
      const d = new Dashboard();
      await d.start({
        config: {
          dashboardListen: '127.0.0.1:0',
          dashboardTerminal: on,
          socketPath: agent.socketPath,
          dataDir: agent.dir,
        },
        log,
        machineId: ME,
        signal: new AbortController().signal,
      });
      return d;
    };
    dash = await start(true);
    offDash = await start(false);
    port = dash.port()!;
  });
  afterAll(async () => {
    await dash?.stop();
    await offDash?.stop();
    await agent?.close();
  });

  async function cookie(p: number, role: 'viewer' | 'operator'): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${p}/ui/session`, {
      method: 'POST',
      body: JSON.stringify({ token: issueToken(agent.dir, role, 60) }),
      headers: { Origin: `http://127.0.0.1:${p}` },
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { terminal: boolean }).terminal).toBe(p === port);
    return r.headers.get('set-cookie')!.split(';')[0]!;
  }

  it('runs a shell for an operator: input, resize, output; audit lines at start and end', async () => {
    lines.length = 0;
    const c = await wsConnect(port, `/ui/terminal/${ME}`, {
      Origin: `http://127.0.0.1:${port}`,
      Cookie: await cookie(port, 'operator'),
    });
    expect(c.status).toBe(101);
    c.send({ type: 'resize', cols: 120, rows: 40 });
    c.send({ type: 'input', data: 'echo "cols=$(stty size)" hi-$((6*7))\r' });
    await until(() => c.text().includes('cols=40 120 hi-42'), 3000).catch((e: Error) => {
      throw new Error(
        `${e.message}; output: ${JSON.stringify(c.text())} close: ${JSON.stringify(c.closeFrame())}`,
      );
    });
    const start = lines.find((l) => l.msg === 'dashboard terminal: session start');
    expect(start?.obj).toMatchObject({ audit: 'terminal', machine: ME, event: 'start' });
    expect(String(start?.obj.who)).toMatch(/token \(operator\) from 127\.0\.0\.1/);
    c.send({ type: 'input', data: 'exit\r' });
    const close = await until(() => c.closeFrame());
    expect(close.code).toBe(1000);
    expect(close.reason).toBe('shell exited 0');
    const end = await until(() => lines.find((l) => l.msg === 'dashboard terminal: session end'));
    expect(end.obj).toMatchObject({ event: 'end', machine: ME, why: 'shell exited 0' });
    c.sock.destroy();
  });

  it('refuses a WebSocket from another origin, without an origin, from a viewer, and without a session', async () => {
    const op = await cookie(port, 'operator');
    const path = `/ui/terminal/${ME}`;
    expect((await wsConnect(port, path, { Origin: 'http://evil.example', Cookie: op })).status).toBe(403);
    expect((await wsConnect(port, path, { Origin: `http://127.0.0.1:${port + 1}`, Cookie: op })).status).toBe(
      403,
    );
    expect((await wsConnect(port, path, { Cookie: op })).status).toBe(403);
    const viewer = await cookie(port, 'viewer');
    expect((await wsConnect(port, path, { Origin: `http://127.0.0.1:${port}`, Cookie: viewer })).status).toBe(
      403,
    );
    expect((await wsConnect(port, path, { Origin: `http://127.0.0.1:${port}` })).status).toBe(401);
    expect(
      (await wsConnect(port, '/ui/other', { Origin: `http://127.0.0.1:${port}`, Cookie: op })).status,
    ).toBe(404);
  });

  it('is off on a dashboard without dashboard_terminal, and says so when the machine has it off', async () => {
    const p = offDash.port()!;
    const c = await wsConnect(p, `/ui/terminal/${ME}`, {
      Origin: `http://127.0.0.1:${p}`,
      Cookie: await cookie(p, 'operator'),
    });
    expect(c.status).toBe(404);
    host.enabled = false;
    try {
      const d = await wsConnect(port, `/ui/terminal/${ME}`, {
        Origin: `http://127.0.0.1:${port}`,
        Cookie: await cookie(port, 'operator'),
      });
      expect(d.status).toBe(101);
      const close = await until(() => d.closeFrame());
      expect(close).toEqual({
        code: CLOSE.off,
        reason: `the terminal is off on machine ${ME} (dashboard_terminal)`,
      });
    } finally {
      host.enabled = true;
    }
  });

  it('says so for a machine that is not in the cluster (down)', async () => {
    const other = 'b'.repeat(32);
    const c = await wsConnect(port, `/ui/terminal/${other}`, {
      Origin: `http://127.0.0.1:${port}`,
      Cookie: await cookie(port, 'operator'),
    });
    expect(c.status).toBe(101);
    expect(await until(() => c.closeFrame())).toEqual({
      code: CLOSE.gone,
      reason: `machine ${other} is down or not in the cluster`,
    });
  });

  it('closes on a bad message, naming the field', async () => {
    const c = await wsConnect(port, `/ui/terminal/${ME}`, {
      Origin: `http://127.0.0.1:${port}`,
      Cookie: await cookie(port, 'operator'),
    });
    c.send({ type: 'resize', cols: 0, rows: 10 });
    expect(await until(() => c.closeFrame())).toEqual({
      code: CLOSE.bad,
      reason: 'resize: cols must be an integer from 1 to 1000',
    });
    expect(parseClientMessage('{')).toBe('message: not JSON');
    expect(parseClientMessage('{"type":"input","data":1}')).toBe('input: data must be a string');
    expect(parseClientMessage('{"type":"x"}')).toBe('message: type must be "input" or "resize"');
  });
});

describe('WebSocket frames', () => {
  function pair() {
    const sock = new PassThrough();
    const written: Buffer[] = [];
    const w = sock.write.bind(sock);
    sock.write = ((b: Buffer) => (written.push(Buffer.from(b)), true)) as never;
    void w;
    const ws = new WebSocketConn(sock, 1024);
    const got: string[] = [];
    ws.on('message', (d) => got.push(d.toString()));
    return { sock, ws, got, out: () => frames(Buffer.concat(written)) };
  }

  it('joins fragments, answers pings, refuses unmasked and oversized frames', () => {
    const a = pair();
    const all = Buffer.concat([
      frame(1, Buffer.from('hel'), false),
      frame(9, Buffer.from('p')),
      frame(0, Buffer.from('lo')),
    ]);
    // Byte by byte: the parser must wait for whole frames.
    for (const b of all) a.sock.emit('data', Buffer.from([b]));
    expect(a.got).toEqual(['hello']);
    expect(a.out()).toEqual([{ opcode: 10, payload: Buffer.from('p') }]);

    const b = pair();
    b.sock.emit('data', frame(1, Buffer.from('x'), true, false));
    expect(b.out()[0]!.opcode).toBe(8);
    expect(b.out()[0]!.payload.readUInt16BE(0)).toBe(1002);

    const c = pair();
    c.sock.emit('data', frame(1, Buffer.alloc(2000)));
    expect(c.out()[0]!.payload.readUInt16BE(0)).toBe(1009);
    expect(c.got).toEqual([]);
  });
});
