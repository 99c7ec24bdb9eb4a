/**
 * The agent loads nothing its configuration does not use (issue 18): importing the daemon loads
 * neither etcd3 (gRPC, protobufjs) nor dockerode (the proxy and the dashboard are imported only when
 * configured: see daemon.ts); a Docker port whose
 * socket is missing fails as Docker-unavailable without loading dockerode; once dockerode loads, its
 * unused ssh2/gRPC/tar-fs requires are stand-ins, while etcd3's gRPC in the same process is real.
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
await d.ping(2000);
const ssh2Real = loaded('ssh2');
const { Etcd3 } = await import('etcd3');
const grpc = (await import('@grpc/grpc-js')).default ?? (await import('@grpc/grpc-js'));
srv.close();
console.log(JSON.stringify({ dockerode: dockerodeLoaded(), ssh2Real, etcd3: typeof Etcd3, grpcCredentials: typeof grpc.credentials.createInsecure }));
`);
    expect(r).toEqual({ dockerode: true, ssh2Real: false, etcd3: 'function', grpcCredentials: 'function' });
  },
);
