/**
 * The agent loads nothing its configuration does not use (issue 18): importing the daemon loads
 * neither etcd3 (gRPC, protobufjs) nor dockerode (the proxy and the dashboard are imported only when
 * configured: see daemon.ts); a Docker port whose
 * socket is missing fails as Docker-unavailable without loading dockerode; the reads an idle agent
 * makes (ping, list, inspect, events: discovery and the container watch) go over node:http
 * (engine-http.ts), so dockerode loads only at the first create/start/pull/log call; once it
 * loads, its unused ssh2/gRPC/tar-fs requires are stand-ins, while etcd3's gRPC in the same process
 * is real.
 * Each case runs in a fresh Node process (module caches are per process).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function probe(script: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
}

const LOADED = `
import Module from 'node:module';
const loaded = (pkg) => Object.keys(Module._cache).some((k) => k.includes('/node_modules/' + pkg + '/'));
`;

it('importing the daemon loads neither etcd3, gRPC, dockerode nor ssh2', { timeout: 60_000 }, () => {
  const r = probe(`${LOADED}
await import('./src/daemon/daemon.ts');
console.log(JSON.stringify({ etcd3: loaded('etcd3'), grpc: loaded('@grpc/grpc-js'), dockerode: loaded('dockerode'), ssh2: loaded('ssh2') }));
`);
  expect(r).toEqual({ etcd3: false, grpc: false, dockerode: false, ssh2: false });
});

it('a missing Docker socket is E_DOCKER_UNAVAILABLE without loading dockerode', { timeout: 60_000 }, () => {
  const r = probe(`${LOADED}
const { DockerodeEngine, dockerodeLoaded } = await import('./src/docker/dockerode.ts');
const d = new DockerodeEngine({ socketPath: '/nonexistent/flotilla-test/docker.sock' });
let code, message;
try { await d.ping(500); } catch (e) { code = e.code; message = e.message; }
console.log(JSON.stringify({ code, message, loaded: dockerodeLoaded() || loaded('dockerode') }));
`);
  expect(r.code).toBe('E_DOCKER_UNAVAILABLE');
  expect(r.message).toContain('/nonexistent/flotilla-test/docker.sock does not exist');
  expect(r.loaded).toBe(false);
});

it(
  "dockerode's unused requires are stand-ins; etcd3's gRPC in the same process is real",
  { timeout: 60_000 },
  () => {
    const r = probe(`${LOADED}
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const sock = join(mkdtempSync(join(tmpdir(), 'fl-lazy-')), 'docker.sock');
const srv = createServer((c) => c.end('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nOK'));
await new Promise((res) => srv.listen(sock, res));
const { DockerodeEngine, dockerodeLoaded } = await import('./src/docker/dockerode.ts');
const d = new DockerodeEngine({ socketPath: sock });
await d.logs('abc', { tail: 1 }); // a dockerode call (ping, list, inspect and events are not)
const ssh2Real = loaded('ssh2');
const { Etcd3 } = await import('etcd3');
const grpc = (await import('@grpc/grpc-js')).default ?? (await import('@grpc/grpc-js'));
srv.close();
console.log(JSON.stringify({ dockerode: dockerodeLoaded(), ssh2Real, etcd3: typeof Etcd3, grpcCredentials: typeof grpc.credentials.createInsecure }));
`);
    expect(r).toEqual({ dockerode: true, ssh2Real: false, etcd3: 'function', grpcCredentials: 'function' });
  },
);

it(
  'the idle reads (ping, list, inspect, events) answer from the engine without loading dockerode',
  { timeout: 60_000 },
  () => {
    const r = probe(`${LOADED}
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const sock = join(mkdtempSync(join(tmpdir(), 'fl-lazy-')), 'docker.sock');
const seen = [];
const srv = createServer((req, res) => {
  seen.push(req.url);
  const json = (status, body) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
  if (req.url === '/_ping') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('OK'); }
  else if (req.url.startsWith('/containers/json?')) json(200, [{ Id: 'c1', Names: ['/web'], Image: 'busybox', ImageID: 'sha256:1', State: 'running', Status: 'Up', Labels: { 'flotilla.service': 'web:80' }, Created: 1 }]);
  else if (req.url === '/containers/c1/json') json(200, { Id: 'c1', Name: '/web', Image: 'sha256:1', Config: { Image: 'busybox', Labels: { a: 'b' } }, State: { Status: 'running', Running: true, Pid: 42, ExitCode: 0, Health: { Status: 'healthy' } } });
  else if (req.url === '/containers/gone/json') json(404, { message: 'No such container: gone' });
  else if (req.url.startsWith('/events?')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: 'c1', Attributes: { name: 'web', 'flotilla.service': 'web:80' } }, timeNano: 5 }) + '\\n');
  } else json(500, { message: 'unexpected ' + req.url });
});
await new Promise((res) => srv.listen(sock, res));
const { DockerodeEngine, dockerodeLoaded } = await import('./src/docker/dockerode.ts');
const d = new DockerodeEngine({ socketPath: sock });
await d.ping(2000);
const list = await d.listContainers({ labels: ['flotilla.service'], all: false });
const info = await d.inspectContainer('c1');
const gone = await d.inspectContainer('gone');
const ev = await new Promise((resolve, reject) => {
  const s = d.events({ labels: ['flotilla.service'], onEvent: (e) => { s.close(); resolve(e); }, onDisconnected: (e) => reject(e) });
});
srv.close();
const eventsUrl = decodeURIComponent(seen.find((u) => u.startsWith('/events?')));
console.log(JSON.stringify({ list, info: { id: info.id, name: info.name, image: info.image, running: info.running, pid: info.pid, health: info.health, labels: info.labels }, gone: gone === undefined, ev, eventsUrl, listUrl: decodeURIComponent(seen[1]), dockerode: dockerodeLoaded() || loaded('dockerode') }));
`);
    expect(r.dockerode).toBe(false);
    expect(r.list).toEqual([
      {
        id: 'c1',
        name: 'web',
        image: 'busybox',
        imageId: 'sha256:1',
        state: 'running',
        status: 'Up',
        labels: { 'flotilla.service': 'web:80' },
        created: 1,
      },
    ]);
    expect(r.listUrl).toBe('/containers/json?all=false&filters={"label":["flotilla.service"]}');
    expect(r.info).toEqual({
      id: 'c1',
      name: 'web',
      image: 'busybox',
      running: true,
      pid: 42,
      health: 'healthy',
      labels: { a: 'b' },
    });
    expect(r.gone).toBe(true);
    expect(r.ev).toMatchObject({
      kind: 'start',
      id: 'c1',
      name: 'web',
      labels: { 'flotilla.service': 'web:80' },
    });
    expect(r.eventsUrl).toContain('"label":["flotilla.service"]');
    expect(r.eventsUrl).toContain('"type":["container"]');
  },
);

it(
  'an engine error keeps its status and message; a missing socket is Docker-unavailable',
  { timeout: 60_000 },
  () => {
    const r = probe(`
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = mkdtempSync(join(tmpdir(), 'fl-lazy-'));
const sock = join(dir, 'docker.sock');
const srv = createServer((req, res) => { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"message":"engine is sad"}'); });
await new Promise((res) => srv.listen(sock, res));
const { DockerodeEngine } = await import('./src/docker/dockerode.ts');
const out = {};
try { await new DockerodeEngine({ socketPath: sock }).listContainers(); } catch (e) { out.http = { code: e.code, message: e.message, status: e.details?.status }; }
srv.close();
try { await new DockerodeEngine({ socketPath: join(dir, 'none.sock') }).listContainers(); } catch (e) { out.missing = { code: e.code, message: e.message }; }
console.log(JSON.stringify(out));
`);
    expect(r.http).toEqual({
      code: 'E_DOCKER_CALL',
      message: 'docker: list containers: engine is sad',
      status: 500,
    });
    expect(r.missing).toMatchObject({ code: 'E_DOCKER_UNAVAILABLE' });
    expect((r.missing as { message: string }).message).toMatch(/does not exist \(is dockerd running\?\)/);
  },
);
