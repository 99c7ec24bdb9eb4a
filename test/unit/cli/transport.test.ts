/**
 * How the CLI reaches the API: https:// with fleetctl's TLS flags (--ca-file, --cert-file,
 * --key-file, their deprecated --etcd-* spellings and FLEETCTL_* variables) against the real API
 * server's mutual-TLS listener; plain http://; --request-timeout against a server that never
 * answers; the environment's FLEETCTL_* / FLOTILLA_* globals and their precedence.
 */
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetV1 } from '../../../src/api/fleet-v1.js';
import { readBody, send } from '../../../src/api/http.js';
import { ApiServer, dispatch } from '../../../src/api/server.js';
import { makePki, type Pki } from '../../support/certs.js';
import { runCli, seed, startApi, type Api } from './harness.js';

let api: Api;
let pki: Pki;
let tls: ApiServer;
let tlsUrl: string;
let plain: Server;
let plainUrl: string;
let silent: NetServer;
let silentUrl: string;
const sockets: Socket[] = [];

const MACHINES_OUT = '10.214.0.11\n10.214.0.12\n-\n';

beforeAll(async () => {
  api = await startApi();
  await seed(api);
  pki = makePki();
  const fleet = new FleetV1(api.registry);
  tls = new ApiServer([(req) => fleet.route(req)]);
  await tls.listen({
    tcp: { host: '127.0.0.1', port: 0, ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
  });
  tlsUrl = `https://127.0.0.1:${tls.tcpPort()}`;
  // Plain HTTP, as a TCP socket unit in front of fleetd would give (fleet's API had no TLS).
  plain = createHttpServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const r = await dispatch([(q) => fleet.route(q)], {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: await readBody(req),
      });
      await send(res, r);
    })();
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}`;
  // Accepts connections and never answers.
  silent = createNetServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
});
afterAll(async () => {
  await tls.close();
  plain.closeAllConnections();
  await new Promise((resolve) => plain.close(resolve));
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await api.close();
  rmSync(pki.dir, { recursive: true, force: true });
});

const list = ['list-machines', '--no-legend', '--fields=ip'];

describe('https:// with client certificates', () => {
  it('works with --ca-file, --cert-file, --key-file', async () => {
    const r = await runCli([
      `--endpoint=${tlsUrl}`,
      `--ca-file=${pki.ca}`,
      `--cert-file=${pki.clientCert}`,
      `--key-file=${pki.clientKey}`,
      ...list,
    ]);
    expect(r).toEqual({ code: 0, out: MACHINES_OUT, err: '' });
  });

  it('takes them from FLEETCTL_* variables and the deprecated --etcd-* spellings', async () => {
    expect(
      await runCli(list, {
        FLEETCTL_ENDPOINT: tlsUrl,
        FLEETCTL_CA_FILE: pki.ca,
        FLEETCTL_CERT_FILE: pki.clientCert,
        FLEETCTL_KEY_FILE: pki.clientKey,
      }),
    ).toEqual({ code: 0, out: MACHINES_OUT, err: '' });
    expect(
      await runCli([
        `--endpoint=${tlsUrl}`,
        `--etcd-cafile=${pki.ca}`,
        `--etcd-certfile=${pki.clientCert}`,
        `--etcd-keyfile=${pki.clientKey}`,
        ...list,
      ]),
    ).toEqual({ code: 0, out: MACHINES_OUT, err: '' });
  });

  it('fails (exit 1, fleetctl message) without a client certificate, with a stranger one, or an unknown CA', async () => {
    const none = await runCli([`--endpoint=${tlsUrl}`, `--ca-file=${pki.ca}`, ...list]);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^Error retrieving list of active machines: https:\/\/127\.0\.0\.1:\d+: /);
    const stranger = await runCli([
      `--endpoint=${tlsUrl}`,
      `--ca-file=${pki.ca}`,
      `--cert-file=${pki.strangerCert}`,
      `--key-file=${pki.strangerKey}`,
      ...list,
    ]);
    expect(stranger.code).toBe(1);
    const noCa = await runCli([
      `--endpoint=${tlsUrl}`,
      `--cert-file=${pki.clientCert}`,
      `--key-file=${pki.clientKey}`,
      ...list,
    ]);
    expect(noCa.code).toBe(1);
    expect(noCa.err).toMatch(/self.signed|unable to verify|certificate/i);
  });

  it('names an unreadable TLS file', async () => {
    const r = await runCli([`--endpoint=${tlsUrl}`, '--ca-file=/nonexistent/ca.pem', ...list]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Unable to initialize client: --ca-file: ENOENT/);
  });
});

describe('http:// and timeouts', () => {
  it('works over plain http://', async () => {
    expect(await runCli([`--endpoint=${plainUrl}`, ...list])).toEqual({
      code: 0,
      out: MACHINES_OUT,
      err: '',
    });
  });

  it('uses only the first of several endpoints, like fleetctl', async () => {
    expect(await runCli([`--endpoint=${plainUrl},http://127.0.0.1:1`, ...list])).toMatchObject({ code: 0 });
  });

  it('gives up after --request-timeout when the API does not answer', async () => {
    const r = await runCli([`--endpoint=${silentUrl}`, '--request-timeout=0.3', ...list]);
    expect(r).toEqual({
      code: 1,
      out: '',
      err: `Error retrieving list of active machines: ${silentUrl}: no answer within 0.3 s\n`,
    });
    const env = await runCli(list, { FLOTILLA_ENDPOINT: silentUrl, FLEETCTL_REQUEST_TIMEOUT: '0.2' });
    expect(env.err).toContain('no answer within 0.2 s');
  });
});

describe('globals from the environment', () => {
  it('FLOTILLA_* wins over FLEETCTL_*, a flag wins over both, and an empty variable is unset', async () => {
    const bad = 'unix:///nonexistent/env.sock';
    expect(await runCli(list, { FLEETCTL_ENDPOINT: bad, FLOTILLA_ENDPOINT: api.endpoint })).toMatchObject({
      code: 0,
      out: MACHINES_OUT,
    });
    expect(await runCli([`--endpoint=${api.endpoint}`, ...list], { FLOTILLA_ENDPOINT: bad })).toMatchObject({
      code: 0,
    });
    expect(await runCli(list, { FLOTILLA_ENDPOINT: '', FLEETCTL_ENDPOINT: api.endpoint })).toMatchObject({
      code: 0,
    });
    const r = await runCli(list, { FLEETCTL_ENDPOINT: bad });
    expect(r.err).toContain('/nonexistent/env.sock');
  });

  it('boolean globals take Go spellings from flags and variables', async () => {
    expect((await runCli(['--debug=f', 'version'])).code).toBe(0);
    expect((await runCli(['version'], { FLEETCTL_DEBUG: 'TRUE' })).code).toBe(0);
    expect((await runCli(['version'], { FLEETCTL_DEBUG: 'yes' })).code).toBe(64);
  });
});
