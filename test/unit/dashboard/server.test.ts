/**
 * The dashboard's server side over real sockets: the Dashboard subsystem on 127.0.0.1 in front of
 * the agent's real API (ApiServer on a temp unix socket over an embedded registry, as in the API
 * tests). Login by one-time token, roles, CSRF, origin and Host checks, the proxy, mutual TLS, and
 * the E_CONFIG refusal off loopback without TLS.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../../src/dashboard/auth.js';
import { Dashboard, type DashboardConfig } from '../../../src/dashboard/server.js';
import { isCode } from '../../../src/lib/errors.js';
import { makePki, type Pki } from '../../support/certs.js';
import { startAgent, type Agent } from '../api/harness.js';

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;

function req(
  port: number,
  method: string,
  path: string,
  o: {
    headers?: Record<string, string>;
    body?: string;
    tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, ...(o.headers ?? {}) };
    if (o.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(o.body));
    const opts = { host: '127.0.0.1', port, method, path, headers, agent: false as const };
    const cb = (r: import('node:http').IncomingMessage) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body }));
    };
    const q = o.tls ? httpsRequest({ ...opts, ...o.tls }, cb) : httpRequest(opts, cb);
    q.on('error', reject);
    q.end(o.body);
  });
}

describe('dashboard server', () => {
  let agent: Agent;
  let dash: Dashboard;
  let port: number;
  let cfg: DashboardConfig;

  beforeAll(async () => {
    agent = await startAgent();
    cfg = {
      dashboardListen: '127.0.0.1:0',
      dashboardTerminal: false,
      socketPath: agent.socketPath,
      dataDir: agent.dir,
    };
    dash = new Dashboard();
    await dash.start({ config: cfg, log: silent, machineId: 'm', signal: new AbortController().signal });
    port = dash.port()!;
  });
  afterAll(async () => {
    await dash.stop();
    await agent.close();
  });

  async function login(role: 'viewer' | 'operator') {
    const token = issueToken(agent.dir, role, 60);
    const r = await req(port, 'POST', '/ui/session', { body: JSON.stringify({ token }) });
    expect(r.status).toBe(200);
    const cookie = String(r.headers['set-cookie']).split(';')[0]!;
    return {
      cookie,
      csrf: (JSON.parse(r.body) as { csrf: string }).csrf,
      raw: String(r.headers['set-cookie']),
    };
  }

  it('exchanges a one-time token for an HttpOnly SameSite=Strict cookie, once', async () => {
    const token = issueToken(agent.dir, 'viewer', 60);
    const r = await req(port, 'POST', '/ui/session', { body: JSON.stringify({ token }) });
    expect(r.status).toBe(200);
    expect(String(r.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
    expect(String(r.headers['set-cookie'])).not.toMatch(/Secure/);
    const again = await req(port, 'POST', '/ui/session', { body: JSON.stringify({ token }) });
    expect(again.status).toBe(401);
  });

  it('refuses a bad or expired token', async () => {
    const bad = await req(port, 'POST', '/ui/session', { body: JSON.stringify({ token: 'x'.repeat(43) }) });
    expect(bad.status).toBe(401);
    const old = issueToken(agent.dir, 'operator', 1, Date.now() - 5000);
    const exp = await req(port, 'POST', '/ui/session', { body: JSON.stringify({ token: old }) });
    expect(exp.status).toBe(401);
    expect(exp.body).toMatch(/invalid, used or expired/);
  });

  it('proxies reads to the API for a viewer and refuses its changes', async () => {
    const v = await login('viewer');
    const none = await req(port, 'GET', '/ui/api/fleet/v1/units');
    expect(none.status).toBe(401);
    const units = await req(port, 'GET', '/ui/api/fleet/v1/units', { headers: { Cookie: v.cookie } });
    expect(units.status).toBe(200);
    expect(JSON.parse(units.body)).toEqual({}); // fleet's answer with no units
    const put = await req(port, 'PUT', '/ui/api/fleet/v1/units/x.service', {
      headers: { Cookie: v.cookie, 'X-CSRF-Token': v.csrf, 'Content-Type': 'application/json' },
      body: JSON.stringify({ desiredState: 'inactive' }),
    });
    expect(put.status).toBe(403);
    expect(put.body).toMatch(/viewer role/);
  });

  it('lets an operator change with the CSRF token only, and passes the API validation error through', async () => {
    const o = await login('operator');
    const h = { Cookie: o.cookie, 'Content-Type': 'application/json' };
    const body = JSON.stringify({ desiredState: 'inactive', options: [] });
    const noCsrf = await req(port, 'PUT', '/ui/api/fleet/v1/units/a.service', { headers: h, body });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body).toMatch(/CSRF/);
    const cross = await req(port, 'PUT', '/ui/api/fleet/v1/units/a.service', {
      headers: { ...h, 'X-CSRF-Token': o.csrf, Origin: 'http://evil.example' },
      body,
    });
    expect(cross.status).toBe(403);
    const bad = await req(port, 'PUT', '/ui/api/fleet/v1/units/a.service', {
      headers: { ...h, 'X-CSRF-Token': o.csrf },
      body,
    });
    expect(bad.status).toBe(409); // fleet's own answer: a new unit without options
    expect(JSON.parse(bad.body)).toHaveProperty('error.message');
    const ok = await req(port, 'PUT', '/ui/api/fleet/v1/units/a.service', {
      headers: { ...h, 'X-CSRF-Token': o.csrf },
      body: JSON.stringify({
        desiredState: 'inactive',
        options: [{ section: 'Service', name: 'ExecStart', value: '/bin/true' }],
      }),
    });
    expect(ok.status).toBe(201);
    const list = await req(port, 'GET', '/ui/api/fleet/v1/units', { headers: { Cookie: o.cookie } });
    expect((JSON.parse(list.body) as { units: { name: string }[] }).units.map((u) => u.name)).toEqual([
      'a.service',
    ]);
  });

  it('refuses a foreign Host (DNS rebinding) and a cross-origin WebSocket', async () => {
    const r = await req(port, 'GET', '/ui/', { headers: { Host: 'evil.example' } });
    expect(r.status).toBe(421);
    const ws = await req(port, 'GET', '/ui/terminal', {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', Origin: 'http://evil.example' },
    });
    expect(ws.status).toBe(403);
  });

  it('sends an expired session back to login (401)', async () => {
    const o = await login('operator');
    dash.sessions.expireAll();
    const r = await req(port, 'GET', '/ui/session', { headers: { Cookie: o.cookie } });
    expect(r.status).toBe(401);
  });

  it('refuses to start off loopback without TLS (E_CONFIG)', async () => {
    const d = new Dashboard();
    const err = await d
      .start({
        config: { ...cfg, dashboardListen: '0.0.0.0:0' },
        log: silent,
        machineId: 'm',
        signal: new AbortController().signal,
      })
      .catch((e: unknown) => e);
    expect(isCode(err, 'E_CONFIG')).toBe(true);
  });
});

describe('dashboard over TLS with client certificates', () => {
  let agent: Agent;
  let dash: Dashboard;
  let pki: Pki;
  beforeAll(async () => {
    agent = await startAgent();
    pki = makePki();
    dash = new Dashboard();
    await dash.start({
      config: {
        dashboardListen: '127.0.0.1:0',
        dashboardCertfile: pki.serverCert,
        dashboardKeyfile: pki.serverKey,
        dashboardCafile: pki.ca,
        dashboardTerminal: false,
        socketPath: agent.socketPath,
        dataDir: agent.dir,
      },
      log: silent,
      machineId: 'm',
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await dash.stop();
    await agent.close();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it('an authorized client certificate is an operator; the cookie is Secure', async () => {
    const ca = readFileSync(pki.ca);
    const port = dash.port()!;
    const anon = await req(port, 'GET', '/ui/session', { tls: { ca } });
    expect(anon.status).toBe(401);
    const cert = { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
    const me = await req(port, 'GET', '/ui/session', { tls: cert });
    expect(me.status).toBe(200);
    expect(JSON.parse(me.body)).toMatchObject({ role: 'operator' });
    const stranger = { ca, cert: readFileSync(pki.strangerCert), key: readFileSync(pki.strangerKey) };
    expect((await req(port, 'GET', '/ui/session', { tls: stranger })).status).toBe(401);
    const token = issueToken(agent.dir, 'viewer', 60);
    const r = await req(port, 'POST', '/ui/session', { tls: { ca }, body: JSON.stringify({ token }) });
    expect(String(r.headers['set-cookie'])).toMatch(/; Secure/);
  });
});
