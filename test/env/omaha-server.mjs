#!/usr/bin/env node
// A small Omaha v3 server for tests (the shape Nebraska and CoreUpdate answer with), loopback only.
//
//   node test/env/omaha-server.mjs --bundle DIR [--version V] [--appid ID] [--port N] [--host ADDR]
//
// --host: the address to listen on and to name in <url codebase>, default 127.0.0.1. Tests give
// the testenv bridge address (TESTENV_HOST_IP) so a machine can reach it; only loopback and
// private (RFC 1918) IPv4 addresses are accepted, never a public one.
// DIR holds a signed bundle as `flotilla update make-bundle` writes it (manifest.json + payload).
// POST /v1/update/  an update check gets `noupdate` or an `ok` answer built from DIR (codebase
//                   http://127.0.0.1:PORT/files/, packages manifest.json + payload, postinstall
//                   sha256 base64); an event-only request gets `<event status="ok"/>`.
// GET  /files/NAME  the bundle files, with Range support (resume).
// GET  /requests    every request body received, as a JSON array of strings.
// GET  /fetches     every /files/ GET, as a JSON array of "NAME" or "NAME bytes=N-" (Range).
// PUT  /mode        body `update`, `noupdate`, or `raw:<xml>` (a recorded response sent verbatim).
// The port is printed on stdout as `omaha-server listening on http://HOST:PORT/v1/update/`.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    bundle: { type: 'string' },
    version: { type: 'string' },
    appid: { type: 'string', default: '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}' },
    port: { type: 'string', default: '0' },
    mode: { type: 'string', default: 'update' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const host = values.host;
const oct = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)?.slice(1).map(Number);
if (
  !oct ||
  oct.some((o) => o > 255) ||
  !(
    oct[0] === 127 ||
    oct[0] === 10 ||
    (oct[0] === 172 && oct[1] >= 16 && oct[1] < 32) ||
    (oct[0] === 192 && oct[1] === 168)
  )
) {
  process.stderr.write(
    `omaha-server: --host ${JSON.stringify(host)} is not a loopback or private IPv4 address\n`,
  );
  process.exit(2);
}
if (!values.bundle) {
  process.stderr.write('omaha-server: --bundle DIR is required\n');
  process.exit(2);
}
const dir = values.bundle;
let mode = values.mode;
const requests = [];
const fetches = [];
const MAX = 1024 * 1024;
const esc = (v) =>
  String(v).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c],
  );

function updateResponse(base) {
  const mbytes = readFileSync(join(dir, 'manifest.json'));
  const m = JSON.parse(mbytes.toString('utf8')).signed;
  const payload = readFileSync(join(dir, m.payload));
  const sha = createHash('sha256').update(payload).digest('base64');
  return `<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="flotilla-test">
  <daystart elapsed_seconds="0"></daystart>
  <app appid="${esc(values.appid)}" status="ok">
    <updatecheck status="ok">
      <urls>
        <url codebase="${esc(base)}files/"></url>
      </urls>
      <manifest version="${esc(values.version ?? m.version)}">
        <packages>
          <package name="manifest.json" size="${mbytes.length}" hash_sha256="${createHash('sha256').update(mbytes).digest('hex')}" required="true"></package>
          <package name="${esc(m.payload)}" size="${payload.length}" required="true"></package>
        </packages>
        <actions>
          <action event="postinstall" sha256="${sha}" DisablePayloadBackoff="true"></action>
        </actions>
      </manifest>
    </updatecheck>
  </app>
</response>
`;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const base = `http://${host}:${server.address().port}/`;
  if (req.method === 'GET' && url.pathname === '/requests') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(requests));
    return;
  }
  if (req.method === 'GET' && url.pathname === '/fetches') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(fetches));
    return;
  }
  if (req.method === 'GET' && url.pathname.startsWith('/files/')) {
    const name = basename(url.pathname);
    fetches.push(req.headers.range ? `${name} ${req.headers.range}` : name);
    let st;
    try {
      st = statSync(join(dir, name));
    } catch {
      res.statusCode = 404;
      res.end();
      return;
    }
    const body = readFileSync(join(dir, name));
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && Number(m[1]) < st.size) {
      res.statusCode = 206;
      res.setHeader('content-range', `bytes ${m[1]}-${st.size - 1}/${st.size}`);
      res.end(body.subarray(Number(m[1])));
    } else if (m) {
      res.statusCode = 416;
      res.end();
    } else res.end(body);
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'PUT' && url.pathname === '/mode') {
      mode = body;
      res.end('ok\n');
      return;
    }
    if (req.method !== 'POST' || !/^\/v1\/update\/?$/.test(url.pathname)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    requests.push(body);
    res.setHeader('content-type', 'text/xml; charset=utf-8');
    if (!body.includes('<updatecheck')) {
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0"><daystart elapsed_seconds="0"/><app appid="${esc(values.appid)}" status="ok"><event status="ok"/></app></response>\n`,
      );
      return;
    }
    if (mode.startsWith('raw:')) res.end(mode.slice(4));
    else if (mode === 'noupdate')
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0"><daystart elapsed_seconds="0"/><app appid="${esc(values.appid)}" status="ok"><ping status="ok"/><updatecheck status="noupdate"/></app></response>\n`,
      );
    else res.end(updateResponse(base));
  });
});
// Idle keep-alive sockets stay open longer than a client keeps them (undici: 4 s), so a client
// never reuses one this side is closing (an "other side closed" race under load).
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), host, () => {
  process.stdout.write(`omaha-server listening on http://${host}:${server.address().port}/v1/update/\n`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => server.close(() => process.exit(0)));
