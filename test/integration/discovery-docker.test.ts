/**
 * Service registration against the real Docker engine and a real (private) etcd: busybox containers
 * on the host network, serving on 127.0.0.1, carrying `flotilla.service=NAME:PORT`. The registrar
 * runs as in the agent (machine lease from a LeaseKeeper, the Docker port's event stream), with the
 * machine's address set to 127.0.0.1 so the registered endpoints are reachable from here.
 */
import { randomUUID } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ServiceRegistrar } from '../../src/discovery/registrar.js';
import { DockerContainerSource } from '../../src/discovery/docker-source.js';
import { DockerodeEngine } from '../../src/docker/dockerode.js';
import type { ContainerCreateSpec } from '../../src/docker/port.js';
import { ServiceProxy } from '../../src/proxy/proxy.js';
import { ServicesView } from '../../src/discovery/services-view.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { LeaseKeeper } from '../../src/registry/lease.js';
import { Registry, type EndpointEntry } from '../../src/registry/registry.js';
import { nullLogger } from '../../src/lib/log.js';
import { startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';
import { describeDocker, dockerSocket } from '../support/testbed.js';

const MACHINE = 'disc-test-machine';
const RUN = randomUUID().slice(0, 8);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One HTTP/1.0 request over a fresh TCP connection; resolves with the status line, or the error code. */
function httpGet(port: number, path = '/'): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`GET ${path} HTTP/1.0\r\n\r\n`));
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data.split('\r\n')[0] ?? ''));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  });
}

describeDocker('service registration from real Docker containers', () => {
  let etcd: SingleEtcd;
  let store: EtcdKvStore;
  let registry: Registry;
  let lease: LeaseKeeper;
  let docker: DockerodeEngine;
  let registrar: ServiceRegistrar;
  let view: ServicesView;
  const containers: string[] = [];

  const endpoints = async (service: string): Promise<EndpointEntry[]> =>
    (await registry.listEndpoints(service)).entries;

  async function run(
    name: string,
    spec: Omit<ContainerCreateSpec, 'name' | 'image' | 'network'>,
  ): Promise<string> {
    const id = await docker.createContainer({
      name: `flotilla-disc-${RUN}-${name}`,
      image: 'busybox:latest',
      network: 'host',
      ...spec,
    });
    containers.push(id);
    await docker.startContainer(id);
    return id;
  }

  beforeAll(async () => {
    etcd = await startSingleEtcd();
    store = new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/flotilla/' });
    registry = new Registry(store);
    lease = new LeaseKeeper(store, 10);
    await lease.start();
    docker = new DockerodeEngine({ socketPath: dockerSocket! });
    await docker.ping();
    registrar = new ServiceRegistrar({
      registry,
      source: new DockerContainerSource(docker),
      lease,
      machineID: MACHINE,
      ip: '127.0.0.1',
      log: nullLogger,
    });
    registrar.start();
    await registrar.firstSync;
    view = new ServicesView(registry);
    await view.start();
  });

  afterAll(async () => {
    await registrar?.stop(false);
    view?.stop();
    for (const id of containers) await docker.removeContainer(id, { force: true }).catch(() => undefined);
    docker?.close();
    await lease?.stop(true);
    await store?.close();
    await etcd?.stop();
  });

  it('registers a running labelled container on the machine lease, and removes it when it dies', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const id = await run('db', {
      labels: { 'flotilla.service': `dbtest:${port}`, 'flotilla.unit': 'dbtest.service' },
      cmd: ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/'],
    });
    const [e] = await until(
      'registered',
      () => endpoints('dbtest'),
      (l) => l.length === 1,
    );
    const registeredMs = Date.now() - t0;
    expect(e).toMatchObject({
      key: `services/dbtest/${MACHINE}:${port}`,
      lease: lease.id,
      record: {
        service: 'dbtest',
        machineID: MACHINE,
        ip: '127.0.0.1',
        port,
        container: id,
        unit: 'dbtest.service',
        health: 'none',
      },
    });
    // The registered endpoint is the real server.
    expect(
      await until(
        'serving',
        () => httpGet(port),
        (s) => s.startsWith('HTTP/'),
      ),
    ).toMatch(/^HTTP\/1\.[01] /);

    const t1 = Date.now();
    await docker.killContainer(id);
    await until(
      'deregistered',
      () => endpoints('dbtest'),
      (l) => l.length === 0,
    );
    console.log(
      `[discovery] registered ${registeredMs} ms after create+start; deregistered ${Date.now() - t1} ms after kill`,
    );
  });

  it('follows the health check: starting, then healthy, then removed when unhealthy', async () => {
    const port = await freePort();
    await run('health', {
      labels: { 'flotilla.service': `healthtest:${port}` },
      cmd: [
        'sh',
        '-c',
        `httpd -p 127.0.0.1:${port} -h /; sleep 2; touch /tmp/ok; sleep 4; rm /tmp/ok; sleep 600`,
      ],
      healthcheck: {
        test: ['CMD-SHELL', 'test -f /tmp/ok'],
        intervalNs: 300e6,
        timeoutNs: 2e9,
        retries: 1,
        // Failures before the first success do not count: it stays `starting` until then.
        startPeriodNs: 30e9,
      },
    });
    const seen: string[] = [];
    const health = async () => {
      const h = (await endpoints('healthtest'))[0]?.record.health ?? 'absent';
      if (seen[seen.length - 1] !== h) seen.push(h);
      return h;
    };
    await until('starting', health, (h) => h === 'starting');
    await until('healthy', health, (h) => h === 'healthy');
    await until('unhealthy → removed', health, (h) => h === 'absent');
    expect(seen).toEqual(['absent', 'starting', 'healthy', 'absent'].slice(seen[0] === 'absent' ? 0 : 1));
  });

  it('does not register a container whose label is invalid, and registers its neighbours', async () => {
    const good = await freePort();
    await run('bad', { labels: { 'flotilla.service': 'Bad_Name:1' }, cmd: ['sleep', '600'] });
    await run('good', {
      labels: { 'flotilla.service': `goodtest:${good}` },
      cmd: ['httpd', '-f', '-p', `127.0.0.1:${good}`, '-h', '/'],
    });
    // The good one was registered by a reconcile that also saw the bad one.
    await until(
      'good registered',
      () => endpoints('goodtest'),
      (l) => l.length === 1,
    );
    const all = (await registry.listEndpoints()).entries.filter((e) => e.record.machineID === MACHINE);
    expect(all.map((e) => e.record.service)).toEqual(['goodtest']);
  });

  it('endpoints vanish with the machine lease, and come back on the next lease', async () => {
    const before = (await endpoints('goodtest'))[0]!;
    const old = lease.id!;
    await store.revokeLease(old);
    expect(await endpoints('goodtest')).toEqual([]);
    await lease.renew(); // finds the lease gone, grants a new one → the registrar re-registers
    const [after] = await until(
      're-registered',
      () => endpoints('goodtest'),
      (l) => l.length === 1,
    );
    expect(after!.lease).not.toBe(old);
    expect(after!.lease).toBe(lease.id);
    expect(after!.record.container).toBe(before.record.container);
  });

  it('the proxy routes to the registered container and refuses once it is gone', async () => {
    const port = await freePort();
    const id = await run('proxied', {
      labels: { 'flotilla.service': `proxytest:${port}` },
      cmd: ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/'],
    });
    const proxy = new ServiceProxy({
      listen: [{ service: 'proxytest', host: '127.0.0.1', port: 0 }],
      source: view,
      log: nullLogger,
      mode: 'userspace', // on the host's own network namespace: no nft rules there
    });
    await proxy.start();
    try {
      const pport = Number(proxy.addresses()[0]!.address.split(':')[1]);
      expect(
        await until(
          'via proxy',
          () => httpGet(pport),
          (s) => s.startsWith('HTTP/'),
        ),
      ).toMatch(/^HTTP\//);
      await docker.killContainer(id);
      await until(
        'view empty',
        () => Promise.resolve(view.endpoints('proxytest')),
        (l) => l.length === 0,
      );
      expect(await httpGet(pport)).toBe('ECONNRESET');
      expect(proxy.stats()[0]!.refused).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });
});
