/**
 * DockerodeEngine's reads (list, inspect, events) and its error mapping against an engine stand-in on
 * a unix socket: what dockerode sends (paths, `all`, the label filters) and how the answers become
 * the port's types. The real engine is exercised by test/integration/docker-engine.test.ts and
 * docker-contract.test.ts; this pins the mapping where no engine runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerodeEngine } from '../../../src/docker/dockerode.js';
import type { ContainerEvent } from '../../../src/docker/port.js';

const dir = mkdtempSync(join(tmpdir(), 'fl-engine-'));
const sock = join(dir, 'docker.sock');
const seen: string[] = [];
let server: Server;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '';
    seen.push(decodeURIComponent(url));
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.startsWith('/containers/json?'))
      json(200, [
        {
          Id: 'c1',
          Names: ['/web'],
          Image: 'busybox',
          ImageID: 'sha256:1',
          State: 'running',
          Status: 'Up',
          Labels: { 'flotilla.service': 'web:80' },
          Created: 1,
        },
      ]);
    else if (url === '/containers/c1/json')
      json(200, {
        Id: 'c1',
        Name: '/web',
        Image: 'sha256:1',
        Config: { Image: 'busybox', Labels: { a: 'b' } },
        State: { Status: 'running', Running: true, Pid: 42, ExitCode: 0, Health: { Status: 'healthy' } },
      });
    else if (url === '/containers/gone/json') json(404, { message: 'No such container: gone' });
    else if (url.startsWith('/events?')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(
        JSON.stringify({
          Type: 'container',
          Action: 'start',
          Actor: { ID: 'c1', Attributes: { name: 'web', 'flotilla.service': 'web:80' } },
          timeNano: 5,
        }) + '\n',
      );
    } else json(500, { message: 'engine is sad' });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

afterAll(() => {
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

it('lists and inspects as the port types, a 404 inspect is undefined', async () => {
  const d = new DockerodeEngine({ socketPath: sock });
  expect(await d.listContainers({ labels: ['flotilla.service'], all: false })).toEqual([
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
  expect(seen).toContain('/containers/json?all=false&filters={"label":["flotilla.service"]}');
  expect(await d.inspectContainer('c1')).toMatchObject({
    id: 'c1',
    name: 'web',
    image: 'busybox',
    running: true,
    pid: 42,
    health: 'healthy',
    labels: { a: 'b' },
  });
  expect(await d.inspectContainer('gone')).toBeUndefined();
});

it('follows events with the container filters and the labels asked for', async () => {
  const d = new DockerodeEngine({ socketPath: sock });
  const ev = await new Promise<ContainerEvent>((resolve, reject) => {
    const s = d.events({
      labels: ['flotilla.service'],
      onEvent: (e) => {
        s.close();
        resolve(e);
      },
      onDisconnected: reject,
    });
  });
  expect(ev).toMatchObject({
    kind: 'start',
    id: 'c1',
    name: 'web',
    labels: { 'flotilla.service': 'web:80' },
  });
  const url = seen.find((u) => u.startsWith('/events?'))!;
  expect(url).toContain('"type":["container"]');
  expect(url).toContain('"label":["flotilla.service"]');
  expect(url).toContain('"event":["create","start","die","stop","kill","health_status","destroy","oom"]');
  d.close();
});

it('an engine error keeps its status and message; a missing socket is Docker-unavailable', async () => {
  const d = new DockerodeEngine({ socketPath: sock });
  await expect(d.logs('x', { tail: 1 })).rejects.toMatchObject({
    code: 'E_DOCKER_CALL',
    message: 'docker: logs of container x: engine is sad',
    details: { status: 500 },
  });
  const missing = new DockerodeEngine({ socketPath: join(dir, 'none.sock') });
  const err = await missing.listContainers().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  expect(err?.code).toBe('E_DOCKER_UNAVAILABLE');
  expect(err?.message).toMatch(/does not exist \(is dockerd running\?\)/);
});
